"""Time windows: how many buckets of which size, ending now, the same in every endpoint."""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.rollups.tiers import HOUR, MINUTE, floor_hour, floor_minute

# name → (bucket size, number of buckets). A window is the N most recent buckets, the
# current (still filling) one included, so "1h" is the last 60 minutes to the minute.
WINDOWS = {
    "1h": (MINUTE, 60),
    "24h": (HOUR, 24),
    "7d": (HOUR, 24 * 7),
    "30d": (HOUR, 24 * 30),
}
# The seed's timeRange values.
ALIASES = {"1d": "24h", "1w": "7d"}


class BadWindow(ValueError):
    """A window name that is not one of WINDOWS."""


@dataclass(frozen=True)
class Window:
    """A concrete window: its buckets from start to the one holding `now`."""

    name: str
    step: timedelta
    start: datetime
    now: datetime

    @property
    def bucket(self) -> str:
        """The bucket unit, as the API names it."""
        return "minute" if self.step == MINUTE else "hour"

    @property
    def until(self) -> datetime:
        """Where counting stops: the end of now's minute. Lines stamped later (a sender's
        clock ahead; they are accepted up to a day ahead) count once their minute comes,
        so that every total is the sum of its series."""
        return floor_minute(self.now) + MINUTE

    def buckets(self) -> list[datetime]:
        """Every bucket start in the window, oldest first."""
        count = WINDOWS[self.name][1]
        return [self.start + self.step * i for i in range(count)]

    def labels(self) -> tuple[str, ...]:
        """Every bucket start in ISO form, oldest first."""
        return _labels(self.name, self.start)

    def to_dict(self) -> dict:
        """Describe the window in API answers."""
        return {"name": self.name, "bucket": self.bucket, "start": self.start.isoformat(),
                "end": self.now.isoformat()}


@functools.lru_cache(maxsize=64)
def _labels(name: str, start: datetime) -> tuple[str, ...]:
    """A window's bucket starts in ISO form: the same all bucket long (168 for 7d), so kept."""
    step, count = WINDOWS[name]
    return tuple((start + step * i).isoformat() for i in range(count))


def make_window(name: str, now: datetime | None = None) -> Window:
    """Build a named window ending now."""
    name = ALIASES.get(name, name)
    if name not in WINDOWS:
        raise BadWindow(f"window must be one of {', '.join(WINDOWS)}")
    now = now or datetime.now(UTC)
    step, count = WINDOWS[name]
    last = floor_minute(now) if step == MINUTE else floor_hour(now)
    return Window(name=name, step=step, start=last - step * (count - 1), now=now)


def window_from_args(args, now: datetime | None = None) -> Window:
    """Read `window` (or the seed's `timeRange`) from request arguments; default 1h."""
    return make_window(args.get("window") or args.get("timeRange") or "1h", now)
