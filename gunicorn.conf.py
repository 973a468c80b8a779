"""gunicorn settings it reads by itself from the directory it starts in (the Procfile's web
line runs in the project root); the command-line options in the Procfile come on top."""


def worker_exit(server, worker):
    """A worker is stopping (restart, deploy, shutdown): close its live sockets now, so it
    exits at once and the pages reconnect to a running worker."""
    from app.realtime import close_sockets

    close_sockets(worker.wsgi)
