"""SleepSync."""
