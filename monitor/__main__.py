"""``python -m monitor`` is the ``monitor`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
