"""The news monitor: poll sources, store articles, group stories, match watchlists, alert."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
