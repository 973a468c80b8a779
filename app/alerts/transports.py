"""Sending one notification: signed webhook POSTs and email, with errors classified."""

import hashlib
import hmac
import json
import smtplib
import time

import requests
from flask import current_app, render_template
from flask_mail import Connection, Message

from app.numbers import whole_number
from app.security.outbound import BlockedAddress, guarded_session

# Statuses worth retrying: the receiver may be fine later. Other 4xx will not change.
RETRYABLE_STATUS = {408, 425, 429}
USER_AGENT = "Logdash-Webhook/1"


class TransportError(Exception):
    """A failed send: permanent ones are not retried; retry_after is the receiver's wish."""

    def __init__(self, message: str, permanent: bool = False, response_code: int | None = None,
                 retry_after: float | None = None) -> None:
        """Keep the details the delivery log records."""
        super().__init__(message)
        self.permanent = permanent
        self.response_code = response_code
        self.retry_after = retry_after


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: HMAC-SHA256 of "timestamp.body" with the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are ignored)."""
    seconds = whole_number(value) if value else None
    return float(seconds) if seconds is not None else None


def send_webhook(url: str, body: dict, delivery_id: str, secret: str, timeout: float,
                 allow: str = "") -> int:
    """POST the signed JSON body; return the status code or raise TransportError.

    Redirects are not followed: a receiver cannot send the request on to an address the
    guard would refuse.
    """
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Logdash-Delivery": delivery_id,
        "X-Logdash-Timestamp": timestamp,
        "X-Logdash-Signature": sign(secret, timestamp, data),
    }
    try:
        with guarded_session(allow) as session:
            response = session.post(url, data=data, headers=headers, timeout=timeout,
                                    allow_redirects=False)
    except BlockedAddress as error:
        raise TransportError(f"refused: {error}", permanent=True) from None
    except requests.Timeout:
        raise TransportError(f"timed out after {timeout:g} s") from None
    except requests.RequestException as error:
        raise TransportError(f"connection failed: {type(error).__name__}") from None
    code = response.status_code
    if code < 300:
        return code
    message = f"receiver answered {code}"
    if code >= 500 or code in RETRYABLE_STATUS:
        raise TransportError(message, response_code=code,
                             retry_after=_retry_after(response.headers.get("Retry-After")))
    raise TransportError(message, permanent=True, response_code=code)


def one_line(text: str) -> str:
    """Text safe for a mail header: no line breaks can sneak in another header."""
    return " ".join(str(text).split())


def subject_and_template(body: dict) -> tuple[str, str]:
    """The subject line and template name (without extension) of a notification's email."""
    if body["event"] == "digest":
        count = body["held_count"]
        return (f"Logdash digest: {count} notification{'' if count == 1 else 's'} held for"
                f" {body['service']}", "email/digest")
    service, level = body["service"], body["level"]
    if body["event"] == "test":
        return f"Test alert from Logdash for {service}: nothing is wrong", "email/alert"
    if body["event"] == "resolved":
        return f"Resolved: {service} - {level}s back under the threshold", "email/alert"
    if body.get("repeat"):
        return f"Still firing: {service} - {level} threshold exceeded", "email/alert"
    return f"Alert: {service} - {level} threshold exceeded", "email/alert"


# How long the server may take to judge a message once it has all of it: many scan mail
# first. A timeout there may mean the message was taken (its retry would send it twice),
# so the wait is longer than for other replies, but within the job's time.
DATA_REPLY_SECONDS = 60


class _SMTP(smtplib.SMTP):
    """An SMTP client that keeps the recipients the server refused when others were taken
    (sendmail returns them; Flask-Mail drops them), and waits longer for the server's
    verdict on a message than for its other replies."""

    def sendmail(self, *args, **kwargs) -> dict:
        """Send, keeping the refused recipients."""
        self.refused = super().sendmail(*args, **kwargs)
        return self.refused

    def data(self, msg) -> tuple[int, bytes]:
        """Send the message; wait up to DATA_REPLY_SECONDS for the server to take it."""
        self.sock.settimeout(max(self.timeout, DATA_REPLY_SECONDS))
        try:
            return super().data(msg)
        finally:
            if self.sock is not None:  # QUIT and the rest wait as long as other replies
                self.sock.settimeout(self.timeout)


class _SMTPOverSSL(_SMTP, smtplib.SMTP_SSL):
    """The same over implicit TLS (MAIL_USE_SSL)."""


class _SMTPConnection(Connection):
    """Flask-Mail's connection with a timeout on every wait for the server: one that takes
    the connection and never answers would hold the worker, and every alert queued
    behind it, until the job's timeout."""

    def configure_host(self) -> _SMTP:
        """Connect, secure and sign in as Flask-Mail does, with the timeout."""
        settings = self.mail
        client = _SMTPOverSSL if settings.use_ssl else _SMTP
        host = client(settings.server, settings.port,
                      timeout=current_app.config["LOGDASH_SMTP_TIMEOUT_SECONDS"])
        # No debug level (Flask-Mail's follows FLASK_DEBUG): smtplib would print the whole
        # exchange to the log, the password of AUTH included.
        if settings.use_tls:
            host.starttls()
        if settings.username and settings.password:
            host.login(settings.username, settings.password)
        return host

    def __exit__(self, *exc_info) -> None:
        """Say goodbye; a server that does not answer QUIT does not undo a message sent."""
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()


def send_email(recipients: str, body: dict, delivery_id: str) -> str | None:
    """Send the notification as text and HTML email, or raise TransportError. Return which
    recipients the server refused while taking the others, if any (a retry would send the
    others a second copy)."""
    subject, template = subject_and_template(body)
    message = Message(
        subject=one_line(subject),
        recipients=[address.strip() for address in recipients.split(",")],
        body=render_template(f"{template}.txt", alert=body),
        html=render_template(f"{template}.html", alert=body),
        extra_headers={"X-Logdash-Delivery": delivery_id},
    )
    try:
        with _SMTPConnection(current_app.extensions["mail"]) as connection:
            connection.send(message)
    except smtplib.SMTPRecipientsRefused as error:
        # Every recipient was refused; a 4xx for any of them (greylisting, a full mailbox)
        # means the same message may pass later.
        codes = [code for code, _ in error.recipients.values()]
        raise TransportError(f"recipients refused: {error}",
                             permanent=all(code >= 500 for code in codes),
                             response_code=min(codes, default=None)) from None
    except smtplib.SMTPResponseException as error:
        # SMTP 5xx replies are final, 4xx are "try again later".
        raise TransportError(f"SMTP {error.smtp_code}: {error.smtp_error!r}",
                             permanent=error.smtp_code >= 500,
                             response_code=error.smtp_code) from None
    except (smtplib.SMTPException, OSError) as error:
        raise TransportError(f"SMTP failed: {type(error).__name__}: {error}") from None
    refused = getattr(connection.host, "refused", {})  # no host: MAIL_SUPPRESS_SEND
    return "; ".join(f"{address} refused: {code} {reply.decode(errors='replace')}"
                     for address, (code, reply) in refused.items()) or None
