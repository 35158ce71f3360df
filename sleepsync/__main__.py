"""``python -m sleepsync``: the ``sleepsync`` command."""

from __future__ import annotations

import sys

from sleepsync.cli import main

sys.exit(main())
