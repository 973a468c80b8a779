"""Fixed-window counters in Redis: login attempts and requests per token."""

import time

from flask import current_app
from redis.exceptions import RedisError


def hit(name: str, limit: int, window_seconds: int) -> int:
    """Count one event; 0 if within the limit, else seconds until the window ends.

    When Redis is down the limit is not enforced: logging in and sending logs matter more
    than counting them.
    """
    window = int(time.time() // window_seconds)
    key = f"{current_app.config['LOGDASH_QUEUE_PREFIX']}:rate:{name}:{window}"
    try:
        with current_app.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds + 1)
            count, _ = pipe.execute()
    except RedisError:
        current_app.logger.warning("rate limit not checked: Redis unavailable")
        return 0
    if count <= limit:
        return 0
    return max(1, int((window + 1) * window_seconds - time.time()) + 1)


def clear(name: str, window_seconds: int) -> None:
    """Forget the current window's count (after a successful login)."""
    window = int(time.time() // window_seconds)
    try:
        current_app.redis.delete(
            f"{current_app.config['LOGDASH_QUEUE_PREFIX']}:rate:{name}:{window}")
    except RedisError:
        current_app.logger.warning("rate limit not cleared: Redis unavailable")


# DECR only a count that exists: a window that ended meanwhile is not given a count of -1
# that would never expire.
_TAKE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end"


def take_back(name: str, window_seconds: int) -> None:
    """Uncount one event of the current window (a sign-in that succeeded: only failures
    count against an address)."""
    window = int(time.time() // window_seconds)
    try:
        current_app.redis.eval(
            _TAKE_BACK, 1, f"{current_app.config['LOGDASH_QUEUE_PREFIX']}:rate:{name}:{window}")
    except RedisError:
        current_app.logger.warning("rate limit not corrected: Redis unavailable")
