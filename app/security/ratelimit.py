"""Fixed-window counters in Redis: login attempts and requests per token.

When Redis is down the limits are not enforced: logging in and sending logs matter more
than counting them (app/redis_extras.py).
"""

import time

from flask import current_app

from app.redis_extras import try_redis


def _key(name: str, window: int) -> str:
    """The counter of one name in one window."""
    return f"{current_app.config['LOGDASH_QUEUE_PREFIX']}:rate:{name}:{window}"


def _count(key: str, window_seconds: int) -> int:
    """Add one to a counter that expires with its window; its new value."""
    with current_app.redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        count, _ = pipe.execute()
    return count


def hit(name: str, limit: int, window_seconds: int, always: bool = False) -> int:
    """Count one event; 0 if within the limit, else seconds until the window ends. With
    `always`, Redis is asked even while other extras skip it (sign-in attempts)."""
    window = int(time.time() // window_seconds)
    count = try_redis("rate limit", lambda: _count(_key(name, window), window_seconds), 0,
                      always)
    if count <= limit:
        return 0
    return max(1, int((window + 1) * window_seconds - time.time()) + 1)


def clear(name: str, window_seconds: int) -> None:
    """Forget the current window's count (after a successful login)."""
    key = _key(name, int(time.time() // window_seconds))
    try_redis("rate limit", lambda: current_app.redis.delete(key), None, always=True)


# DECR only a count that exists: a window that ended meanwhile is not given a count of -1
# that would never expire.
_TAKE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end"


def take_back(name: str, window_seconds: int) -> None:
    """Uncount one event of the current window (a sign-in that succeeded: only failures
    count against an address)."""
    key = _key(name, int(time.time() // window_seconds))
    try_redis("rate limit", lambda: current_app.redis.eval(_TAKE_BACK, 1, key), None,
              always=True)
