"""Sums over sealed hours, kept per process.

An hour is sealed once the hourly job has passed it and no late line has marked it dirty
since. Its counts then change only when the job redoes hours, a line too old for the
minute tier is added to it, or retention removes it, and each of those moves
logs.tier_changes. Keyed on the window, the watermark, the dirty hours and that time, a
stored sum is exact for as long as it can be found.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable

from flask import current_app

# Windows x services x kinds in use at once; each entry is at most a few hundred kB.
MAX_ENTRIES = 128


class SealedSums:
    """A small most-recently-used store of computed sums."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        """Start empty."""
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, compute: Callable):
        """The stored value for key, or compute() stored under it. Never mutate the result."""
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        # Computed outside the lock: two threads may both compute a new key, which is only
        # wasted work, as both get the same numbers.
        value = compute()
        with self.lock:
            self.entries[key] = value
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget everything (after tables were emptied behind the app's back)."""
        with self.lock:
            self.entries.clear()


def sealed_sums(part: str = "hours") -> SealedSums:
    """This app's store of sums over sealed hours, or (part="minutes") over kept minutes.

    Kept minutes are summed anew every minute for each window in view, while sealed hours
    change about hourly and cost the most to sum: a store each, so that the former never
    push the latter out.
    """
    return current_app.extensions.setdefault(f"logdash.sealed_sums.{part}", SealedSums())
