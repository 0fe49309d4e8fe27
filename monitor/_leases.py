"""Keep claimed work's leases alive while it runs.

A daemon leases what it claims (sources, outbox rows) for ``lease:`` (default 2m) so that
a killed daemon's work passes to another once the lease expires. Work that legitimately
outlasts the lease (a batch of slow feeds, a long digest run) must not be taken over
while it is still going: ``keep_leases`` renews the leases every third of the lease from
a background thread until the block ends. A daemon that dies stops renewing, and its
leases expire as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import MonitorError

__all__ = ["keep_leases"]

log = logging.getLogger("monitor.leases")


@contextmanager
def keep_leases(renew: Callable[[], object], lease: float) -> Iterator[None]:
    """Call ``renew`` every ``lease / 3`` seconds while the block runs.

    Args:
        renew: extends the leases of the work in progress (a storage call).
        lease: the lease length in seconds.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(lease / 3):
            try:
                renew()
            except MonitorError as exc:  # the next renewal may succeed; the lease is longer
                log.warning("lease.renew_failed error=%s", exc)

    thread = threading.Thread(target=loop, name="lease-keeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
