"""The news monitor: poll sources, store articles, group stories, match watchlists, alert."""

from __future__ import annotations

import sys

__all__ = ["__version__"]

__version__ = "0.1.0"

# httpx imports its command-line client at import time when click is installed (click,
# rich's console and pygments come with it: 0.15-0.3 s here). Nothing in the monitor runs
# that client, and a poll cycle loads only what it uses (issue 9); a None entry makes
# httpx's ``from ._main import main`` fail, which httpx handles by design.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
