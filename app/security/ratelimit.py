"""Fixed-window counters: login attempts and requests per token.

They live in Redis, shared by every process. While Redis cannot be reached (or skipped,
app/redis_extras.py), each process counts on its own instead: the limits still hold, per
process, and signing in or sending logs never waits on a Redis that is away.
"""

import threading
import time
import zlib

from flask import current_app

from app.redis_extras import try_redis

# Counts of this process, kept while Redis is away: (window length, window) -> {key:
# count}. Past windows go whole. A window holds at most MAX_HERE keys of their own
# (whoever varies names or addresses must not grow a process's memory without end);
# beyond, new keys share OVERFLOW counters: counted too high, never not at all.
_here: dict[tuple[int, int], dict[str, int]] = {}
_here_lock = threading.Lock()
MAX_HERE = 50_000
OVERFLOW = 4096


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


def _count_here(key: str, window_seconds: int, window: int, change: int = 1) -> int:
    """Change this process's own counter of a window; its new value."""
    with _here_lock:
        for old in [w for w in _here if w[0] == window_seconds and w[1] < window]:
            del _here[old]
        counts = _here.setdefault((window_seconds, window), {})
        if key not in counts and len(counts) >= MAX_HERE:
            key = f"overflow:{zlib.crc32(key.encode()) % OVERFLOW}"
        counts[key] = max(counts.get(key, 0) + change, 0)
        return counts[key]


def hit(name: str, limit: int, window_seconds: int) -> int:
    """Count one event; 0 if within the limit, else seconds until the window ends."""
    window = int(time.time() // window_seconds)
    key = _key(name, window)
    count = try_redis("rate limit", lambda: _count(key, window_seconds), None)
    if count is None:
        count = _count_here(key, window_seconds, window)
    if count <= limit:
        return 0
    return max(1, int((window + 1) * window_seconds - time.time()) + 1)


def clear(name: str, window_seconds: int) -> None:
    """Forget the current window's count (after a successful login)."""
    window = int(time.time() // window_seconds)
    key = _key(name, window)
    with _here_lock:
        _here.get((window_seconds, window), {}).pop(key, None)
    try_redis("rate limit", lambda: current_app.redis.delete(key), None)


# DECR only a count that exists: a window that ended meanwhile is not given a count of -1
# that would never expire.
_TAKE_BACK = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end"


def take_back(name: str, window_seconds: int) -> None:
    """Uncount one event of the current window (a sign-in that succeeded: only failures
    count against an address)."""
    window = int(time.time() // window_seconds)
    key = _key(name, window)
    if key in _here.get((window_seconds, window), {}):
        _count_here(key, window_seconds, window, -1)
    try_redis("rate limit", lambda: current_app.redis.eval(_TAKE_BACK, 1, key), None)
