"""Jinja filters turning API values into what people read; their output is still escaped."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import url_for

from app.alerts.transports import one_line
from app.models import LEVELS
from app.web import bp

SPARK_WIDTH = 120
SPARK_HEIGHT = 24
# Points drawn per sparkline at most (frames go out every second: keep them small).
SPARK_POINTS = 60
BUCKET_SECONDS = {"minute": 60, "hour": 3600}


def _moment(value) -> datetime | None:
    """A datetime from an ISO string (as the API gives) or a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@bp.app_template_filter("number")
def number(value: int | None) -> str:
    """A count with thousands separators."""
    return "—" if value is None else f"{value:,}"


@bp.app_template_filter("one_line")
def quoted_line(text, limit: int = 300) -> str:
    """Log text quoted on one line, cut to `limit` characters: in a plain-text email, a
    message's own line breaks could otherwise pose as lines of the email (links included)."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


@bp.app_template_filter("percent")
def percent(rate: float) -> str:
    """An error rate (0 to 1) as a percentage people can compare at a glance."""
    if rate == 0:
        return "0%"
    return f"{rate * 100:.1f}%" if rate >= 0.001 else "<0.1%"


@bp.app_template_filter("clock")
def clock(value) -> str:
    """A time in UTC to the second; every page shows UTC."""
    moment = _moment(value)
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_global("example_time")
def example_time(hours: int) -> str:
    """A whole hour that many hours from now, as forms' examples show a time to type."""
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (moment + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%MZ")


@bp.app_template_filter("ago")
def ago(value, now: datetime | None = None) -> str:
    """How long ago a time was, roughly."""
    moment = _moment(value)
    if moment is None:
        return "never"
    seconds = max(((now or datetime.now(UTC)) - moment).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def _merge_buckets(series: list[int], most: int) -> list[int]:
    """Sum neighbouring buckets so at most `most` remain: a 120 px line cannot show 720."""
    size = -(-len(series) // most)
    return [sum(series[i:i + size]) for i in range(0, len(series), size)]


@bp.app_template_filter("sparkline")
def sparkline(series: list[int]) -> str:
    """SVG polyline points drawing a series in a box of SPARK_WIDTH by SPARK_HEIGHT."""
    if not series:
        return ""
    series = _merge_buckets(series, SPARK_POINTS)
    peak = max(series) or 1
    step = SPARK_WIDTH / max(len(series) - 1, 1)
    # One pixel of margin so a flat line at zero or the peak is not cut by the edge.
    usable = SPARK_HEIGHT - 2
    return " ".join(f"{i * step:.1f},{SPARK_HEIGHT - 1 - value / peak * usable:.1f}"
                    for i, value in enumerate(series))


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    """Attributes as indented JSON text (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@bp.app_template_global("socket_path")
def socket_path(endpoint: str, **values) -> str:
    """A WebSocket route's path and query, which htmx turns into ws:// or wss:// itself.

    url_for gives socket routes a full ws:// URL built from the request, which would be
    wrong behind a TLS proxy; the page's own scheme is the right one.
    """
    url = urlsplit(url_for(endpoint, **values))
    return url.path + (f"?{url.query}" if url.query else "")


@bp.app_template_filter("chart_series")
def chart_series(series: dict) -> dict:
    """The API's series in the chart's compact form: first bucket, step, a list per level.

    The same numbers as the points, a tenth of the bytes (30 days are 720 points).
    """
    points = series["points"]
    return {
        "start": int(_moment(points[0]["t"]).timestamp()) if points else 0,
        "step": BUCKET_SECONDS[series["bucket"]],
        "levels": {level: [point[level] for point in points] for level in LEVELS},
    }
