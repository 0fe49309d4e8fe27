"""Level 3's time windows (``monitor.dedupe``), in a module of their own: the settle job
reads them on every run, and only loads dedupe (and its word tables) when a story is due.
"""

from datetime import timedelta

# A re-report joins a story within this much of its articles' own times, either side.
WINDOW = timedelta(days=7)
# How far back (and ahead) a new story looks for the story it follows (``follow_up``).
RELATED_WINDOW = timedelta(days=365)
