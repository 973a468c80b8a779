"""PostgreSQL going away: 503 with Retry-After, nothing half-written, recovery after."""

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.conftest import create_database, make_app, migrate_up
from tests.helpers import authed, post_logs


@pytest.fixture
def outage_app(private_postgres, redis_url, queue_prefix):
    """An app on a PostgreSQL server of this test's own, which it may stop."""
    admin = f"postgresql://postgres@/postgres?host={private_postgres.pgdata}"
    _, url = create_database(admin)
    application = make_app(url, redis_url, queue_prefix)
    migrate_up(application)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def counts() -> tuple[int, int]:
    """Stored lines and the rollup's total."""
    return (
        db.session.execute(text("SELECT count(*) FROM logs.entries")).scalar_one(),
        db.session.execute(text("SELECT coalesce(sum(count), 0) FROM logs.rollup_minute"))
        .scalar_one(),
    )


def test_stopped_database_gives_503_and_recovers(outage_app, private_postgres):
    """While PostgreSQL is down ingest answers 503 + Retry-After; afterwards it works again."""
    client = authed(outage_app.test_client())
    assert post_logs(client, [{"service": "a", "message": "before"}]).status_code == 202
    db.session.remove()

    private_postgres.stop()
    response = post_logs(client, [{"service": "a", "message": f"during {i}"} for i in range(50)])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json == {"error": "database unavailable, try again later"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"].startswith("error:")
    assert client.get("/api/logs").status_code == 503
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "The database is not answering" in page.get_data(as_text=True)
    assert page.headers["Retry-After"] == "5"

    private_postgres.start()
    assert counts() == (1, 1)
    after = post_logs(client, [{"service": "a", "message": "after"}])
    assert after.status_code == 202
    assert counts() == (2, 2)


def test_connection_lost_mid_write_leaves_nothing(outage_app):
    """If the server drops the connection after COPY but before commit, no row survives."""
    db.session.execute(text(
        "CREATE FUNCTION logs.die() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"))
    db.session.execute(text(
        "CREATE TRIGGER die BEFORE INSERT ON logs.rollup_minute FOR EACH ROW"
        " WHEN (NEW.service = 'doomed') EXECUTE FUNCTION logs.die()"))
    db.session.commit()
    client = authed(outage_app.test_client())
    db.session.remove()

    lines = [{"service": "doomed", "message": f"line {i}"} for i in range(500)]
    response = post_logs(client, lines)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    db.session.remove()
    assert counts() == (0, 0)
    assert post_logs(client, [{"service": "fine", "message": "x"}]).status_code == 202
    assert counts() == (1, 1)


def test_exhausted_pool_is_503_not_a_hang(app, database_url, redis_url, queue_prefix):
    """When every pooled connection is busy past the timeout, the answer is a prompt 503."""
    application = make_app(database_url, redis_url, queue_prefix, SQLALCHEMY_ENGINE_OPTIONS={
        "pool_size": 1, "max_overflow": 0, "pool_timeout": 1})
    with application.app_context():
        client = authed(application.test_client())
        db.session.remove()
        held = db.engine.connect()
        try:
            response = post_logs(client, {"service": "a", "message": "m"})
        finally:
            held.close()
            db.engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
