"""One hub per web process: its sockets, the Redis listener feeding them, and the ticker.

Every process (gunicorn worker, machine) subscribes once to the live channel and copies each
message into the bounded outbox of every local socket that wants its topic. Dashboard frames
are made once per tick for the whole cluster: at each tick every process competes, for each
view its own sockets show, for a Redis lock named after that tick; only the winner computes
the numbers and publishes them, and every process (the winner's too) hears them back.
"""

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from flask import Flask

log = logging.getLogger(__name__)

# Frames a socket may fall behind before its oldest are dropped: a dashboard frame replaces
# the one before it, so a slow client loses nothing it would still need.
OUTBOX_FRAMES = 32
# A socket (or watched topic) not refreshed for this long is gone: its process crashed.
PRESENCE_SECONDS = 10.0
# Longest pause between two attempts to reach Redis again.
MAX_RECONNECT_DELAY = 5.0
# How long the listener waits for a message before checking whether it should stop.
LISTEN_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class View:
    """What a dashboard socket shows: a window, for every service or for one."""

    window: str
    service: str | None = None

    @property
    def topic(self) -> str:
        """The name its frames are published under."""
        if self.service:
            return f"service:{self.window}:{self.service}"
        return f"dashboard:{self.window}"


class LiveKeys:
    """Names of the Redis channel and keys of one Logdash installation (its queue prefix)."""

    def __init__(self, prefix: str) -> None:
        """Derive every name from the prefix, so test runs and installations never mix."""
        self.channel = f"{prefix}:live"
        self.sockets = f"{prefix}:live:sockets"
        self.topics = f"{prefix}:live:topics"
        self.prefix = prefix

    def tick_lock(self, topic: str, tick: int) -> str:
        """The lock the publisher of one topic's frame at one tick holds."""
        return f"{self.prefix}:live:tick:{tick}:{topic}"


def keys_of(app: Flask) -> LiveKeys:
    """The live keys of an app."""
    return LiveKeys(app.config["LOGDASH_QUEUE_PREFIX"])


def publish(app: Flask, topic: str, data) -> int:
    """Send data to every socket of every process listening to topic; return processes reached."""
    message = json.dumps({"topic": topic, "data": data}, separators=(",", ":"))
    return app.redis.publish(keys_of(app).channel, message)


def is_watched(app: Flask, topic: str) -> bool:
    """Whether some socket anywhere currently wants topic."""
    expires = app.redis.zscore(keys_of(app).topics, topic)
    return expires is not None and expires > time.time()


def connection_count(app: Flask) -> int:
    """Open sockets across every process, not counting those of crashed processes."""
    return app.redis.zcount(keys_of(app).sockets, f"({time.time()}", "+inf")


class Outbox:
    """A bounded queue of frames for one socket; the oldest go when it is full.

    `weigh`, if given, says how much a frame holds (the tail's lines): what the dropped
    ones held is added up, for the socket to say what it missed.
    """

    def __init__(self, size: int = OUTBOX_FRAMES,
                 weigh: Callable[[object], int] | None = None) -> None:
        """Start empty."""
        self._frames: deque = deque(maxlen=size)
        self._ready = threading.Condition()
        self._weigh = weigh
        self._dropped = 0

    def put(self, frame) -> None:
        """Add a frame, dropping the oldest if the socket is that far behind."""
        with self._ready:
            if self._weigh is not None and len(self._frames) == self._frames.maxlen:
                self._dropped += self._weigh(self._frames[0])
            self._frames.append(frame)
            self._ready.notify()

    def take_dropped(self) -> int:
        """What the frames dropped since the last call held, by `weigh`."""
        with self._ready:
            dropped, self._dropped = self._dropped, 0
            return dropped

    def get(self, timeout: float):
        """The oldest waiting frame, or None if none comes within timeout seconds."""
        with self._ready:
            if not self._frames:
                self._ready.wait(timeout)
            return self._frames.popleft() if self._frames else None


@dataclass(eq=False)
class Subscription:
    """One socket's interest: the topics it receives, the view it shows, its outbox."""

    topics: frozenset[str]
    view: View | None = None
    outbox: Outbox = field(default_factory=Outbox)
    # Keeps of each message only what the socket shows, None for nothing, before it takes a
    # place in the outbox: messages a socket would not show never push out ones it would.
    accepts: Callable[[object], object | None] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Hub:
    """The sockets of one process and the two threads serving them."""

    def __init__(self, app: Flask, render_view: Callable[[Flask, View], str],
                 presence_seconds: float = PRESENCE_SECONDS) -> None:
        """Prepare, without starting threads: they start with the first socket, after fork."""
        self.app = app
        self.render_view = render_view
        self.tick_seconds = app.config["LOGDASH_LIVE_TICK_SECONDS"]
        self.presence_seconds = max(presence_seconds, 3 * self.tick_seconds)
        self.keys = keys_of(app)
        self.id = uuid.uuid4().hex[:12]
        self.listening = threading.Event()
        self._subscriptions: dict[str, Subscription] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_in: int | None = None
        # One per socket this process may hold (app/realtime/sockets.py takes and frees them).
        self.slots = threading.BoundedSemaphore(app.config["LOGDASH_LIVE_MAX_SOCKETS"])

    # Sockets

    @contextmanager
    def subscription(self, topics: set[str], view: View | None = None,
                     accepts: Callable[[object], object | None] | None = None,
                     outbox: Outbox | None = None):
        """Register a socket for its lifetime."""
        subscription = Subscription(frozenset(topics), view, outbox or Outbox(), accepts)
        self._ensure_started()
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        try:
            self._announce([subscription])
        except redis.RedisError:
            log.warning("could not count a new socket yet; the next tick will")
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.pop(subscription.id, None)
            self._withdraw(subscription)

    def _member(self, subscription: Subscription) -> str:
        """The socket's entry in the shared set: process id first, to tell processes apart."""
        return f"{self.id}:{subscription.id}"

    def _announce(self, subscriptions: list[Subscription]) -> None:
        """Count these sockets and their topics as present for another presence period."""
        if not subscriptions:
            return
        expires = time.time() + self.presence_seconds
        topics = {topic for s in subscriptions for topic in s.topics}
        with self.app.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.sockets, {self._member(s): expires for s in subscriptions})
            pipe.zadd(self.keys.topics, dict.fromkeys(topics, expires), gt=True)
            pipe.zremrangebyscore(self.keys.sockets, "-inf", time.time())
            pipe.zremrangebyscore(self.keys.topics, "-inf", time.time())
            # If every process vanishes the sets vanish too.
            pipe.expire(self.keys.sockets, int(self.presence_seconds * 2) + 1)
            pipe.expire(self.keys.topics, int(self.presence_seconds * 2) + 1)
            pipe.execute()

    def _withdraw(self, subscription: Subscription) -> None:
        """Stop counting a closed socket at once (its topics expire on their own)."""
        try:
            self.app.redis.zrem(self.keys.sockets, self._member(subscription))
        except redis.RedisError:
            log.warning("could not unregister a closed socket; it expires on its own")

    def _snapshot(self) -> list[Subscription]:
        """The current subscriptions, copied so threads can iterate without the lock."""
        with self._lock:
            return list(self._subscriptions.values())

    def dispatch(self, raw: bytes | str) -> None:
        """Copy one channel message into the outbox of every local socket wanting its topic."""
        try:
            message = json.loads(raw)
            topic, data = message["topic"], message["data"]
        except (ValueError, KeyError, TypeError):
            topic = None
        if not isinstance(topic, str):  # a list would fail the topic look-ups below
            log.warning("ignoring a malformed live message")
            return
        for subscription in self._snapshot():
            if topic not in subscription.topics:
                continue
            shown = data
            if subscription.accepts is not None:
                try:
                    shown = subscription.accepts(data)
                except (KeyError, TypeError, AttributeError):
                    log.warning("ignoring a live message its socket cannot read")
                    continue
            if shown is not None:
                subscription.outbox.put(shown)

    # Threads

    def _ensure_started(self) -> None:
        """Start the listener and the ticker in this process, once (again after a fork)."""
        with self._lock:
            if self._started_in == os.getpid():
                return
            # Threads do not survive fork: a child starts its own.
            self._started_in = os.getpid()
            self._stop.clear()
            self._threads = [
                threading.Thread(target=self._listen, name=f"live-listener-{self.id}",
                                 daemon=True),
                threading.Thread(target=self._tick_loop, name=f"live-ticker-{self.id}",
                                 daemon=True),
            ]
            for thread in self._threads:
                thread.start()

    @property
    def stopping(self) -> bool:
        """Whether the process is closing its sockets (it is about to exit)."""
        return self._stop.is_set()

    def begin_stopping(self) -> None:
        """Tell the threads and sockets to stop, without waiting for them (a signal handler
        calls this)."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads; the sockets see `stopping` and close."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._started_in = None

    def _listener_client(self) -> redis.Redis:
        """A Redis client of the listener's own, named so operators can see it."""
        url = self.app.config["REDIS_URL"]
        # A half-open TCP connection (a machine gone) is noticed within health_check_interval
        # seconds. A unix socket (the embedded run's Redis) takes no keepalive option.
        keepalive = {} if url.startswith("unix:") else {"socket_keepalive": True}
        return redis.Redis.from_url(url, client_name=f"logdash-live-{self.id}",
                                    health_check_interval=15, **keepalive)

    def _listen(self) -> None:
        """Feed the local sockets from the channel, reconnecting whenever Redis drops."""
        delay = 0.2
        client = self._listener_client()
        while not self._stop.is_set():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.channel)
                self.listening.set()
                delay = 0.2
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                    if message and message["type"] == "message":
                        self.dispatch(message["data"])
            except (redis.RedisError, OSError) as error:
                self.listening.clear()
                log.warning("live listener lost Redis (%s); retrying in %.1fs", error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
            finally:
                pubsub.close()
        self.listening.clear()
        client.close()

    def _tick_loop(self) -> None:
        """Wake at every tick boundary (the same instants in every process) and run the tick."""
        while not self._stop.wait(self.tick_seconds - time.time() % self.tick_seconds):
            tick = round(time.time() / self.tick_seconds)
            try:
                self.run_tick(tick)
            except redis.RedisError as error:
                log.warning("live tick %s skipped: Redis unavailable (%s)", tick, error)

    def run_tick(self, tick: int) -> None:
        """Refresh this process's presence, then publish the views whose tick lock it wins."""
        subscriptions = self._snapshot()
        self._announce(subscriptions)
        for view in {s.view for s in subscriptions if s.view is not None}:
            if self._claim(view.topic, tick):
                self._publish_view(view)

    def _claim(self, topic: str, tick: int) -> bool:
        """Take the lock for one topic at one tick; False if another process has it."""
        lock_ms = max(int(self.tick_seconds * 5000), 2000)
        return bool(self.app.redis.set(self.keys.tick_lock(topic, tick), self.id, nx=True,
                                       px=lock_ms))

    def _publish_view(self, view: View) -> None:
        """Compute one view's frame and publish it; a failure costs this tick only."""
        try:
            frame = self.render_view(self.app, view)
        except Exception:
            # The database may be down or the view gone; the next tick tries again.
            log.exception("could not compute the live frame of %s", view.topic)
            return
        publish(self.app, view.topic, frame)
