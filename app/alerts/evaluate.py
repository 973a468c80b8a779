"""Threshold evaluation and the violation lifecycle: ok → firing → resolved.

Counts come from the minute rollup: a threshold is per UTC minute. A minute is "over" when
its count is above the threshold; an episode fires once `for_minutes` consecutive minutes
are over, looking at the minute now filling (so a crossing is seen within seconds) and the
ones before it (so a burst late in a minute still counts after the minute turns). An
episode resolves once a full minute and the current one are both at or under the threshold.

While a silence or maintenance window holds a (service, level), violations are recorded as
usual but nothing is delivered; one notification is owed for the episode, sent when the hold
ends if it is still firing then (and not acknowledged meanwhile).

Every change of state is claimed with a conditional statement (a unique index for
opening, `WHERE resolved_at IS NULL` for resolving, `WHERE last_notified_at < ...` for
repeats, `WHERE notification_held` for the notice owed after a silence, and
`last_evaluated_at` for the minimum evaluation interval), so evaluators running at once
never notify twice for one thing. The changes are committed together with the deliveries
they call for (app/alerts/notify.py), so none is recorded without its notice.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from app.alerts.silences import Hold, SilenceBook
from app.alerts.turn import take_evaluation_turn
from app.extensions import db
from app.models import AlertConfig, AlertViolation
from app.rollups.tiers import MINUTE, floor_minute

# What each alert level counts, and the config field holding its threshold.
ALERT_LEVELS = {
    "error": (("error", "critical"), "error_threshold_per_min"),
    "warning": (("warning",), "warning_threshold_per_min"),
}
# How far back each evaluation looks for episodes no check saw while they lasted.
CATCH_UP_MINUTES = 60
MISSED = "recovered before a check saw it"


@dataclass
class AlertEvent:
    """A notification to send: a violation firing (first or repeat) or resolved.

    `silenced` events are recorded and announced but not delivered; `held_until` is when
    the hold that silenced a firing ends, so an evaluation can be scheduled then.
    """

    event: str
    violation: AlertViolation
    config: AlertConfig
    repeat: bool = False
    silenced: bool = False
    held_until: datetime | None = None
    after_silence: bool = False


def over_runs(over: Sequence[bool], for_minutes: int) -> list[tuple[int, int]]:
    """The [start, end) index ranges of runs of at least for_minutes consecutive over-minutes.

    Each run is one episode under the shared `for` semantics: it fires at index
    start + for_minutes - 1 and closes at index end (the first minute not over).
    """
    runs, start = [], None
    for index, is_over in enumerate([*over, False]):
        if is_over and start is None:
            start = index
        elif not is_over and start is not None:
            if index - start >= for_minutes:
                runs.append((start, index))
            start = None
    return runs


def firing_run(over: Sequence[bool], for_minutes: int) -> tuple[int, int] | None:
    """The run of for_minutes over-minutes ending at the last or next-to-last minute, if any."""
    return next((run for run in over_runs(over, for_minutes) if run[1] >= len(over) - 1), None)


def minute_series(services: list[str], now: datetime, minutes: int) -> dict:
    """Per (service, alert level): counts of the `minutes` minutes up to now's, oldest first."""
    current = floor_minute(now)
    first = current - (minutes - 1) * MINUTE
    rows = db.session.execute(
        text("SELECT service, minute, level, count FROM logs.rollup_minute"
             " WHERE minute >= :first AND minute <= :current AND service = ANY(:services)"
             " AND level = ANY(:levels)"),
        {"first": first, "current": current, "services": services,
         "levels": [level for levels, _ in ALERT_LEVELS.values() for level in levels]},
    )
    series: dict = defaultdict(lambda: [0] * minutes)
    for service, minute, level, count in rows:
        for alert_level, (levels, _) in ALERT_LEVELS.items():
            if level in levels:
                series[(service, alert_level)][(minute - first) // MINUTE] += count
    return series


def _claim_configs(now: datetime) -> list[int]:
    """The ids of the enabled configs due for evaluation, claimed by moving
    last_evaluated_at to now.

    One conditional UPDATE, committed at once: of two evaluators at the same moment only
    one gets a config with a minimum interval, and no row lock outlives the claim.
    """
    ids = db.session.execute(
        text("UPDATE logs.alert_configs SET last_evaluated_at = :now WHERE enabled"
             " AND (min_evaluation_interval_seconds = 0 OR last_evaluated_at IS NULL"
             " OR last_evaluated_at <= :now - make_interval("
             "secs => min_evaluation_interval_seconds))"
             " RETURNING id"),
        {"now": now},
    ).scalars().all()
    db.session.commit()
    return ids


def _still_enabled(ids: list[int]) -> list[AlertConfig]:
    """The claimed configs as they are once the evaluation has its turn: one disabled or
    deleted while it waited is left alone (app/alerts/configs.py takes the same turn)."""
    return list(db.session.scalars(select(AlertConfig).where(
        AlertConfig.id.in_(ids), AlertConfig.enabled).order_by(AlertConfig.id)))


def _open(config: AlertConfig, level: str, count: int, threshold: int, now: datetime,
          started: datetime, hold: Hold | None) -> AlertViolation | None:
    """Open a violation unless one is already open; a held one owes a notification."""
    row = db.session.execute(
        text("INSERT INTO logs.alert_violations (config_id, service, level, current_count,"
             " peak_count, threshold_value, timestamp, last_notified_at, silenced,"
             " notification_held)"
             " VALUES (:config, :service, :level, :count, :count, :threshold, :started, :now,"
             " :held, :held)"
             " ON CONFLICT (service, level) WHERE resolved_at IS NULL DO NOTHING"
             " RETURNING id"),
        {"config": config.id, "service": config.service, "level": level, "count": count,
         "threshold": threshold, "now": now, "started": started, "held": hold is not None},
    ).scalar()
    return db.session.get(AlertViolation, row) if row else None


def _claim_repeat(violation: AlertViolation, config: AlertConfig, count: int,
                  now: datetime, hold: Hold | None) -> bool:
    """Note the latest count and the peak, and claim a repeat notification if one is due
    (held if silenced).

    Whether it was due is read from the row as locked (FOR UPDATE), so of two evaluators
    at once the second sees the first's claim, even with the same `now`.
    """
    due = now - timedelta(minutes=config.repeat_interval_minutes)
    claimed = db.session.execute(
        text("WITH old AS (SELECT id, last_notified_at <= :due AND acknowledged_at IS NULL"
             " AS due FROM logs.alert_violations WHERE id = :id AND resolved_at IS NULL"
             " FOR UPDATE)"
             " UPDATE logs.alert_violations AS v SET current_count = :count,"
             " peak_count = greatest(v.peak_count, :count),"
             " last_notified_at = CASE WHEN old.due THEN :now ELSE v.last_notified_at END,"
             " notification_held = v.notification_held OR (old.due AND :held),"
             " silenced = v.silenced OR (old.due AND :held)"
             " FROM old WHERE v.id = old.id RETURNING old.due"),
        {"count": count, "due": due, "now": now, "id": violation.id,
         "held": hold is not None},
    ).scalar()
    return bool(claimed)


def _claim_owed(violation: AlertViolation, count: int, now: datetime) -> bool | None:
    """Claim the notice owed since a hold ended: send it (True), drop it (False), or None.

    False means the episode was acknowledged meanwhile; None that nothing was owed.
    """
    return db.session.execute(
        text("UPDATE logs.alert_violations SET notification_held = false,"
             " current_count = :count, peak_count = greatest(peak_count, :count),"
             " last_notified_at = :now"
             " WHERE id = :id AND notification_held AND resolved_at IS NULL"
             " RETURNING acknowledged_at IS NULL"),
        {"count": count, "now": now, "id": violation.id},
    ).scalar()


# Whether anyone was told the episode fired: it was never silenced, a firing notice went
# out, or someone acknowledged it.
_TOLD = ("(NOT v.silenced OR v.acknowledged_at IS NOT NULL OR EXISTS (SELECT 1"
         " FROM logs.alert_deliveries d WHERE d.violation_id = v.id AND d.event = 'firing'))")


def _resolve(violation: AlertViolation, now: datetime, hold: Hold | None) -> bool | None:
    """Resolve an open violation; whether to deliver the resolution, None if already done.

    Nothing is delivered while held: if people were told it fired, the resolution is owed
    (notification_held) and goes out when the hold ends; if nobody was told, it stays quiet.
    """
    return db.session.execute(
        text("UPDATE logs.alert_violations AS v SET resolved_at = :now,"
             f" resolution = 'recovered', notification_held = :held AND {_TOLD},"
             " silenced = silenced OR :held"
             f" WHERE id = :id AND resolved_at IS NULL RETURNING NOT :held AND {_TOLD}"),
        {"now": now, "id": violation.id, "held": hold is not None},
    ).scalar()


def _owed_resolutions(configs: list[AlertConfig], book: SilenceBook) -> list[AlertEvent]:
    """Resolutions held back by a silence that has ended: claim and return each once."""
    by_service = {config.service: config for config in configs}
    owed = db.session.scalars(select(AlertViolation).where(
        AlertViolation.notification_held, AlertViolation.resolved_at.is_not(None),
        AlertViolation.service.in_(list(by_service))))
    events = []
    for violation in owed:
        if book.hold(violation.service, violation.level) is not None:
            continue
        claimed = db.session.execute(
            text("UPDATE logs.alert_violations SET notification_held = false"
                 " WHERE id = :id AND notification_held RETURNING id"), {"id": violation.id},
        ).scalar()
        if claimed is not None:
            events.append(AlertEvent("resolved", violation, by_service[violation.service],
                                     after_silence=True))
    return events


def _check(config: AlertConfig, level: str, counts: list[int],
           violation: AlertViolation | None, book: SilenceBook,
           now: datetime) -> AlertEvent | None:
    """Apply one (service, level)'s recent counts to its episode; the event, if any."""
    threshold = getattr(config, ALERT_LEVELS[level][1])
    recent = counts[-config.for_minutes - 1:]
    count = max(recent[-2:])
    hold = book.hold(config.service, level)
    held = {"silenced": hold is not None, "held_until": hold.until if hold else None}
    if violation is None:
        run = firing_run([c > threshold for c in recent], config.for_minutes)
        if run is None:
            return None
        # With `for`, the episode began at the first minute of the run, before it fired.
        started = (floor_minute(now) - (len(recent) - 1 - run[0]) * MINUTE
                   if config.for_minutes > 1 else now)
        opened = _open(config, level, count, threshold, now, started, hold)
        return AlertEvent("firing", opened, config, **held) if opened else None
    if count <= threshold:
        told = _resolve(violation, now, hold)
        if told is None:
            return None
        # Resolved under a hold: a resolution owed to people told it fired goes out when
        # the hold ends, and a check is due then.
        return AlertEvent("resolved", violation, config, silenced=not told,
                          held_until=held["held_until"])
    if hold is None:
        owed = _claim_owed(violation, count, now)
        if owed is not None:
            # An acknowledgement during the silence drops the owed notice.
            return AlertEvent("firing", violation, config, after_silence=True) if owed else None
    if _claim_repeat(violation, config, count, now, hold):
        return AlertEvent("firing", violation, config, repeat=True, **held)
    return None


def _violation_spans(services: list[str], since: datetime) -> dict:
    """Per (service, alert level): the [start, end) of every violation since `since`."""
    spans = defaultdict(list)
    for service, level, start, end in db.session.execute(
            select(AlertViolation.service, AlertViolation.level, AlertViolation.timestamp,
                   AlertViolation.resolved_at)
            .where(AlertViolation.service.in_(services),
                   (AlertViolation.resolved_at.is_(None)) | (AlertViolation.resolved_at > since))):
        # A check fires on the previous minute too: the episode it opened may have been
        # over in the minute before the one its time falls in.
        spans[(service, level)].append((floor_minute(start) - MINUTE,
                                        end or datetime.max.replace(tzinfo=UTC)))
    return spans


def _missed(config: AlertConfig, level: str, counts: list[int], now: datetime,
            spans: list[tuple]) -> list[AlertEvent]:
    """Episodes that began and ended between checks (a stopped worker, lines that arrived
    late, a minimum evaluation interval) and that no violation covers: each is recorded as
    resolved, and told as firing then resolved unless a hold held it when it began, when
    it ended, or holds it now.

    Only minutes since the config last changed count: a new threshold judges what comes.
    """
    threshold = getattr(config, ALERT_LEVELS[level][1])
    first = floor_minute(now) - (len(counts) - 1) * MINUTE
    since = max(first, floor_minute(config.updated_at))
    skip = max((since - first) // MINUTE, 0)
    over = [index >= skip and count > threshold for index, count in enumerate(counts)]
    events = []
    # Runs still reaching the previous minute are the live check's (_check).
    for start, end in (run for run in over_runs(over, config.for_minutes)
                       if run[1] <= len(counts) - 2):
        began, ended = first + start * MINUTE, first + end * MINUTE
        if any(s < ended and e > began for s, e in spans):
            continue
        run = counts[start:end]
        holds = (SilenceBook(moment).hold(config.service, level) for moment in (began, ended, now))
        hold = next((found for found in holds if found is not None), None)
        violation = AlertViolation(
            config_id=config.id, service=config.service, level=level,
            current_count=run[config.for_minutes - 1], peak_count=max(run),
            threshold_value=threshold, timestamp=began, resolved_at=ended, resolution=MISSED,
            last_notified_at=now, silenced=hold is not None, notification_held=False)
        db.session.add(violation)
        db.session.flush()
        spans.append((began, ended))
        if hold is None:
            events += [AlertEvent("firing", violation, config),
                       AlertEvent("resolved", violation, config)]
    return events


def evaluate(now: datetime | None = None) -> list[AlertEvent]:
    """Check the enabled configs due for evaluation; return the events, their changes not
    yet committed: notify() commits them with the deliveries they owe."""
    clock = now is None
    now = now or datetime.now(UTC)
    claimed = _claim_configs(now)
    if not claimed:
        return []
    take_evaluation_turn()
    if clock:
        now = datetime.now(UTC)  # after any wait for the lock
    configs = _still_enabled(claimed)
    if not configs:
        return []
    services = [config.service for config in configs]
    # The minute now filling, the previous one, and enough before them for the longest `for`
    # and for the episodes no check saw.
    minutes = CATCH_UP_MINUTES + max(c.for_minutes for c in configs) + 1
    series = minute_series(services, now, minutes)
    spans = _violation_spans(services, floor_minute(now) - minutes * MINUTE)
    open_violations = {
        (v.service, v.level): v
        for v in db.session.scalars(select(AlertViolation).where(
            AlertViolation.resolved_at.is_(None), AlertViolation.service.in_(services)))
    }
    book = SilenceBook(now)
    events = []
    for config in configs:
        for level in ALERT_LEVELS:
            counts = series[(config.service, level)]
            event = _check(config, level, counts,
                           open_violations.get((config.service, level)), book, now)
            if event is not None:
                events.append(event)
            events += _missed(config, level, counts, now, spans[(config.service, level)])
    events += _owed_resolutions(configs, book)
    for event in events:  # the columns the statements above changed
        db.session.refresh(event.violation)
    return events
