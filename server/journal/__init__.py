"""The dream journal: a room's night kept as the engine saw it, to replay exactly.

- :mod:`.schema` — the file format (documented there), its records and limits.
- :mod:`.codec` — records to bytes and back, checked field by field.
- :mod:`.files` — writing files (plain or gzip), reading them as a stream.
- :mod:`.tap` — an engine wrapper that records each step for a journal.
- :mod:`.replay` — running a journal's inputs through the engine again:
  bit-exact checks, what-if runs.
- :mod:`.night` — what a night was like, in figures (phases, balance,
  collapses, glitches), for the what-if comparison.
- :mod:`.export` — a room's retained history (snapshot + stored events) as
  a journal, on the server.
- :mod:`.recorder` — ``serve --journal-dir``: every owned room, recorded
  continuously in rotated, bounded segments.
- :mod:`.plot` — pictures of a night (matplotlib, Agg).
"""
