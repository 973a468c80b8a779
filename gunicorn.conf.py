"""gunicorn settings it reads by itself from the directory it starts in (the Procfile's web
line runs in the project root); the command-line options in the Procfile come on top."""


def worker_exit(server, worker):
    """A worker is stopping (restart, deploy, shutdown): close its live sockets now, so it
    exits at once and the pages reconnect to a running worker."""
    from app.realtime import close_sockets

    app = getattr(worker, "wsgi", None)  # none yet when stopped while it still loads
    if app is not None:
        close_sockets(app)


def post_worker_init(worker):
    """Tune the worker's interpreter for many short requests beside a few long ones.

    gc.freeze() moves everything the app built at start-up out of the garbage collector's
    sight.

    create_app() leaves about 136 000 tracked objects that live as long as the worker; a
    full collection walks them all (about 85 ms here) every few requests that allocate a
    lot, which is most of the dashboard's p95. Frozen objects are never collected, which is
    right for them, and forked workers keep sharing their memory pages.
    """
    import gc
    import sys

    gc.freeze()
    close_sockets_on_sigterm(worker)
    # A request waiting on PostgreSQL gets the GIL back only when the running thread gives
    # it up, by default after 5 ms: a dashboard request making a dozen round trips next to
    # an ingest request parsing a batch waited up to that long after each. 1 ms keeps such
    # short requests short while batches are parsed; the extra switches cost little.
    sys.setswitchinterval(0.001)


def close_sockets_on_sigterm(worker):
    """Tell the live pages to reconnect as soon as the worker is told to stop.

    A gthread worker waits for its open connections, live sockets included, for the whole
    graceful timeout before it calls worker_exit: the pages were told only after it, or cut
    off when the master killed the worker. gunicorn set its handlers before this hook runs,
    so this one wraps its own.
    """
    import signal

    from app.realtime import begin_closing_sockets

    stop = worker.handle_exit

    def handle_exit(number, frame):
        """Start closing the sockets (each closes within a second), then stop as usual."""
        begin_closing_sockets(worker.wsgi)
        stop(number, frame)

    signal.signal(signal.SIGTERM, handle_exit)
