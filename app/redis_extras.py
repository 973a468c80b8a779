"""Uses of Redis that a request can do without: rate limits, ingest counters, live
updates, a request for a threshold check.

While Redis fails (down, or hanging until the socket timeout), each such call would wait
for its own timeout, several per request, and log its own traceback. After one failure
they are skipped for a spell instead, and the failure is logged once per spell.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Long enough that a hanging Redis costs one request in this many seconds its timeout, not
# every request.
SKIP_SECONDS = 30.0

log = logging.getLogger(__name__)
T = TypeVar("T")
_skip_until = 0.0


def try_redis(what: str, call: Callable[[], T], fallback: T) -> T:
    """call(), or fallback when Redis failed for it or could not be reached within the
    last spell."""
    global _skip_until
    if time.monotonic() < _skip_until:
        return fallback
    try:
        return call()
    except (RedisConnectionError, RedisTimeoutError) as error:
        # Redis is away or hanging: the next calls would wait as long.
        if time.monotonic() >= _skip_until:
            log.warning("Redis failed (%s: %s); rate limits, ingest counters, live updates"
                        " and check requests are skipped for %.0f s", what, error,
                        SKIP_SECONDS)
        _skip_until = time.monotonic() + SKIP_SECONDS
    except RedisError as error:
        # An answer, refusing this one call (a command an ACL forbids, ...).
        log.warning("Redis refused %s: %s", what, error)
    return fallback
