"""The listener's settings: the app's config when it has them (tests), else the environment.

They are read here rather than in app.config because only `flask listen` uses them; each
is documented in .env.example and docs/configuration.md.
"""

import os
from dataclasses import dataclass

from app.numbers import whole_number

# Longest single message a TCP frame or reassembled GELF datagram may hold; messages are
# cut to LOGDASH_MAX_MESSAGE_BYTES at ingest anyway, this only bounds what is buffered.
MAX_FRAME_BYTES = 1024 * 1024
OFF = ("", "0", "off", "no", "false")


@dataclass(frozen=True)
class ListenerSettings:
    """Where the listener binds, which receivers run, and how it batches."""

    bind: str = "0.0.0.0"  # noqa: S104  (a log collector listens for other machines)
    syslog_udp: int | None = 5514
    syslog_tcp: int | None = 5514
    gelf_udp: int | None = 12201
    gelf_tcp: int | None = 12201
    batch_lines: int = 1000
    batch_seconds: float = 0.2


def _raw(config, name: str):
    """The setting from the app's config if set there, else from the environment."""
    return config[name] if name in config else os.environ.get(name)


def _port(config, name: str, default: int | None) -> int | None:
    """A port setting, or its default when unset or empty (as every setting)."""
    raw = _raw(config, name)
    return default if raw is None or str(raw).strip() == "" else parse_port(name, raw)


def parse_port(name: str, raw) -> int | None:
    """A port number, or None for 0 / off (that receiver does not run)."""
    text = str(raw).strip().lower()
    if text in OFF:
        return None
    port = whole_number(text)
    if port is None or not 0 < port < 65536:
        raise ValueError(f"{name} must be a port number, 0 or off; got {raw!r}")
    return port


def _number(config, name: str, default, kind):
    """An int or float setting, naming the variable when it is not a number."""
    raw = _raw(config, name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def listener_settings(config, **overrides) -> ListenerSettings:
    """Read the settings; keyword overrides (command-line options that were given) win."""
    defaults = ListenerSettings()
    settings = {
        "bind": _raw(config, "LOGDASH_LISTEN_BIND") or defaults.bind,
        "syslog_udp": _port(config, "LOGDASH_SYSLOG_UDP_PORT", defaults.syslog_udp),
        "syslog_tcp": _port(config, "LOGDASH_SYSLOG_TCP_PORT", defaults.syslog_tcp),
        "gelf_udp": _port(config, "LOGDASH_GELF_UDP_PORT", defaults.gelf_udp),
        "gelf_tcp": _port(config, "LOGDASH_GELF_TCP_PORT", defaults.gelf_tcp),
        "batch_lines": _number(config, "LOGDASH_LISTEN_BATCH_LINES", defaults.batch_lines, int),
        "batch_seconds": _number(config, "LOGDASH_LISTEN_BATCH_MS", None, float),
    }
    settings["batch_seconds"] = (defaults.batch_seconds if settings["batch_seconds"] is None
                                 else settings["batch_seconds"] / 1000)
    settings.update(overrides)
    return ListenerSettings(**settings)
