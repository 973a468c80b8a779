"""Counts per bucket for a window, from the minute and hourly tiers.

Recent minutes live only in the minute tier; older hours in the hourly tier once the hourly
job has passed them (the watermark). Hours that late lines touched after aggregation are
"dirty" and read from minutes until the job redoes them. Combining the tiers this way keeps
every count exact at every moment, without reading raw lines.
"""

from sqlalchemy import text

from app.extensions import db
from app.rollups.aggregate import read_watermark
from app.stats.windows import Window

# (minute table, hourly table, key columns) per kind of count.
KINDS = {
    "levels": ("rollup_minute", "rollup_hourly", ("service", "level")),
    "templates": ("template_minute", "template_hourly", ("service", "level", "fingerprint")),
}


def _filters(service: str | None, levels: list[str] | None) -> str:
    """Extra WHERE conditions for a service and a set of levels."""
    where = ""
    if service is not None:
        where += " AND service = :service"
    if levels:
        where += " AND level = ANY(:levels)"
    return where


def counts_source(window: Window, kind: str, service=None, levels=None) -> tuple[str, dict]:
    """A SELECT of (bucket, keys..., count) rows covering the window, and its parameters."""
    minute_table, hourly_table, keys = KINDS[kind]
    columns = ", ".join(keys)
    where = _filters(service, levels)
    params = {"start": window.start, "service": service, "levels": levels}
    if window.bucket == "minute":
        sql = (f"SELECT minute AS bucket, {columns}, count FROM logs.{minute_table}"
               f" WHERE minute >= :start{where}")
        return sql, params
    dirty = list(db.session.execute(text("SELECT hour FROM logs.dirty_hours")).scalars())
    params.update(watermark=max(read_watermark("hourly") or window.start, window.start),
                  dirty=dirty)
    sql = (
        f"SELECT hour AS bucket, {columns}, count FROM logs.{hourly_table}"
        f" WHERE hour >= :start AND hour < :watermark AND NOT hour = ANY(:dirty){where}"
        " UNION ALL"
        f" SELECT date_trunc('hour', minute, 'UTC'), {columns}, count FROM logs.{minute_table}"
        " WHERE minute >= :start"
        f" AND (minute >= :watermark OR date_trunc('hour', minute, 'UTC') = ANY(:dirty)){where}"
    )
    return sql, params


def level_counts(window: Window, service: str | None = None) -> list[tuple]:
    """(bucket, service, level, count) for every non-empty bucket of the window."""
    source, params = counts_source(window, "levels", service)
    sql = (f"SELECT bucket, service, level, sum(count)::bigint FROM ({source}) AS c"
           " GROUP BY 1, 2, 3")
    return [tuple(row) for row in db.session.execute(text(sql), params)]


def top_templates(window: Window, limit: int, service=None, levels=None) -> list[dict]:
    """The most frequent templates in the window, with their per-bucket counts."""
    source, params = counts_source(window, "templates", service, levels)
    params["limit"] = limit
    top = db.session.execute(text(
        f"WITH c AS ({source})"
        " SELECT c.service, c.level, c.fingerprint, sum(c.count)::bigint AS n,"
        " t.template, t.sample, t.first_seen, t.last_seen"
        " FROM c LEFT JOIN logs.templates t USING (service, level, fingerprint)"
        " GROUP BY 1, 2, 3, 5, 6, 7, 8 ORDER BY n DESC, c.fingerprint, c.service, c.level"
        " LIMIT :limit"
    ), params).all()
    if not top:
        return []
    params["keys"] = [f"{r.service}\x1f{r.level}\x1f{r.fingerprint}" for r in top]
    series_rows = db.session.execute(text(
        f"WITH c AS ({source})"
        " SELECT service, level, fingerprint, bucket, sum(count)::bigint FROM c"
        " WHERE service || chr(31) || level || chr(31) || fingerprint = ANY(:keys)"
        " GROUP BY 1, 2, 3, 4"
    ), params).all()
    series: dict[tuple, dict] = {}
    for service_name, level, fingerprint, bucket, count in series_rows:
        series.setdefault((service_name, level, fingerprint), {})[bucket] = count
    buckets = window.buckets()
    return [
        {
            "fingerprint": r.fingerprint,
            "template": r.template,
            "sample": r.sample,
            "service": r.service,
            "level": r.level,
            "count": r.n,
            "first_seen": r.first_seen.isoformat() if r.first_seen else None,
            "last_seen": r.last_seen.isoformat() if r.last_seen else None,
            "series": [series.get((r.service, r.level, r.fingerprint), {}).get(b, 0)
                       for b in buckets],
        }
        for r in top
    ]
