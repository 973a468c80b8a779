"""Migrations build the whole schema on an empty database, match the models, and go down."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.extensions import db, include_name
from tests.conftest import create_database, drop_database, make_app
from tests.helpers import authed

EXPECTED_TABLES = {"entries", "rollup_minute", "alert_configs", "alert_violations", "services",
                   "rollup_hourly", "rollup_daily", "template_minute", "template_hourly",
                   "templates", "dirty_hours", "dirty_days", "watermarks", "alert_deliveries",
                   "ingest_keys", "users", "api_tokens", "alert_rate_windows",
                   "alert_silences", "alert_maintenance_windows", "alert_violations_archive",
                   "alert_deliveries_archive", "tier_changes", "job_executions", "user_sessions"}


@pytest.fixture
def empty_app(postgres_admin_url, redis_url, queue_prefix):
    """An app on a brand-new empty database."""
    name, url = create_database(postgres_admin_url)
    application = make_app(url, redis_url, queue_prefix)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()
    drop_database(postgres_admin_url, name)


def logs_tables() -> set[str]:
    """Tables in the logs schema, partitions left out."""
    rows = db.session.execute(text(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'logs' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"))
    return {name for (name,) in rows}


def test_upgrade_creates_everything_and_downgrade_removes_it(empty_app):
    """Up, down and up again on an empty database."""
    upgrade()
    assert logs_tables() == EXPECTED_TABLES
    strategy = db.session.execute(text(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'logs.entries'::regclass"
    )).scalar_one()
    assert strategy == "r"
    db.session.commit()

    downgrade(revision="base")
    schemas = db.session.execute(text(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'logs'")).scalar_one()
    assert schemas == 0
    db.session.commit()

    upgrade()
    assert logs_tables() == EXPECTED_TABLES


def test_models_and_migrations_agree(empty_app):
    """Autogenerate finds nothing to change after upgrade, even with partitions present."""
    upgrade()
    from app.ingest.partitions import ensure_partitions_ahead

    ensure_partitions_ahead(2)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_schemas": True, "include_name": include_name})
        assert compare_metadata(context, db.metadata) == []


def test_downgrade_drops_partitions_with_their_rows(empty_app):
    """Going down removes the data partitions too, leaving no stray tables."""
    upgrade()
    client = authed(empty_app.test_client())
    assert client.post("/api/logs", json={"service": "a", "message": "m"}).status_code == 202
    db.session.remove()
    downgrade(revision="base")
    leftovers = db.session.execute(text(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'entries_p%'")).scalar_one()
    assert leftovers == 0


def test_read_tokens_lose_the_pins_they_were_made_with(empty_app):
    """A read token pinned before pins were refused for it is unpinned by the upgrade; an
    ingest token keeps its pin; the database refuses a new pinned read token."""
    upgrade(revision="0009_templates_hot_updates")
    db.session.execute(text(
        "INSERT INTO logs.api_tokens (name, token_hash, prefix, scope, service) VALUES"
        " ('old read', 'h1', 'ld_a', 'read', 'billing'),"
        " ('shipper', 'h2', 'ld_b', 'ingest', 'billing')"))
    db.session.commit()
    upgrade()
    pins = db.session.execute(text(
        "SELECT name, service FROM logs.api_tokens ORDER BY name")).all()
    assert [tuple(row) for row in pins] == [("old read", None), ("shipper", "billing")]
    with pytest.raises(IntegrityError):
        db.session.execute(text(
            "INSERT INTO logs.api_tokens (name, token_hash, prefix, scope, service)"
            " VALUES ('new read', 'h3', 'ld_c', 'read', 'billing')"))
    db.session.rollback()
