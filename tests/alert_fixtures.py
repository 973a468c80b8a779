"""Real peers for alert tests: an SMTP server, an HTTP receiver, and a job runner."""

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from flask import current_app
from rq import SimpleWorker

from app.jobs.schedule import make_scheduler


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MailBox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        """Start empty, taking every recipient, answering at once."""
        self.messages = []
        self.rcpt_replies = []
        self.data_delay = 0.0  # seconds before taking a message (a server scanning it)
        self.quit_delay = 0.0  # seconds before answering QUIT

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """Answer the next scripted reply to a recipient, then take the rest."""
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        """Keep the message."""
        await asyncio.sleep(self.data_delay)
        self.messages.append(envelope)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        """Say goodbye, when the delay is over."""
        await asyncio.sleep(self.quit_delay)
        return "221 Bye"


class SMTPServer:
    """A real SMTP server on a free loopback port."""

    def __init__(self) -> None:
        """Start listening."""
        self.box = MailBox()
        self.port = free_port()
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()


class Receiver:
    """A real HTTP server recording webhook requests, answering scripted statuses."""

    def __init__(self, statuses=(200,)) -> None:
        """Listen on a free port; answer statuses in turn, repeating the last one."""
        self.requests = []
        self.statuses = list(statuses)
        self.headers_to_send = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            """Record the request and answer the next scripted status."""

            def do_POST(self):
                """Record and answer."""
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body,
                                          "path": self.path})
                index = min(len(receiver.requests) - 1, len(receiver.statuses) - 1)
                self.send_response(receiver.statuses[index])
                for name, value in receiver.headers_to_send.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args):
                """Stay quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        """The JSON bodies received so far."""
        return [json.loads(r["body"]) for r in self.requests]

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def run_jobs(until=None, timeout: float = 15.0) -> None:
    """Run queued and due scheduled jobs with a real RQ worker until `until()` or idle."""
    scheduler = make_scheduler()
    queues = [current_app.alert_queue, current_app.task_queue]
    deadline = time.monotonic() + timeout
    while True:
        scheduler.enqueue_jobs()
        SimpleWorker(queues, connection=current_app.redis).work(burst=True)
        if until is None or until() or time.monotonic() > deadline:
            return
        time.sleep(0.2)
