"""Imported by the parse workers' fork server, or by a single worker, before any job
(``monitor._prepare.Workers``).

It loads the parsers, the normaliser and dedupe's English word-frequency table (about
10 MB, 0.4 s to build): every worker forked from the server shares them instead of
building its own copy, out of the cyclic collector's way (``monitor._prepare.tune_gc``).
Nothing else imports it.
"""

from __future__ import annotations

from monitor import _features, dedupe, normalize, parse  # noqa: F401
from monitor._prepare import tune_gc

_features.extract("Preload the word tables.", "")
tune_gc()
