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
