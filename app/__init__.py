"""Logdash: a self-hosted log aggregation and statistics dashboard."""

import os
import secrets
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.answers import AnswerJSON
from app.config import Config

# Anyone who knows the key can sign a session cookie as any user: a key copied from an
# example, or short enough to guess, is refused rather than used.
MIN_SECRET_KEY_CHARS = 16
EXAMPLE_KEY_PREFIX = "change-me"


def _secret_key(app: Flask) -> str:
    """Use SECRET_KEY, or one kept in the instance folder so every process shares it."""
    key = app.config.get("SECRET_KEY")
    if key:
        if key.startswith(EXAMPLE_KEY_PREFIX) or len(key) < MIN_SECRET_KEY_CHARS:
            raise RuntimeError(
                f"SECRET_KEY must be a random string of at least {MIN_SECRET_KEY_CHARS}"
                " characters, not an example (python3 -c 'import secrets;"
                " print(secrets.token_hex(32))'), or unset to use one generated under"
                " the instance folder."
            )
        return key
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(config: dict | None = None) -> Flask:
    """Build the Logdash app from the environment, overridden by `config` if given."""
    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        # A relative one (.env.example's ./instance) is the project's, whatever folder a
        # command runs in, as for manage.py.
        instance_path=str((root / (os.environ.get("LOGDASH_INSTANCE_PATH") or "instance"))
                          .resolve()),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.from_object(Config())
    if config:
        app.config.update(config)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        raise RuntimeError(
            "DATABASE_URL is not set. `python3 manage.py run` starts an embedded PostgreSQL"
            " and Redis and sets it for you."
        )
    if not app.config["REDIS_URL"]:
        raise RuntimeError("REDIS_URL is not set (see .env.example).")
    app.config["SECRET_KEY"] = _secret_key(app)
    app.json = AnswerJSON(app)
    if proxies := app.config["LOGDASH_TRUSTED_PROXIES"]:
        # Behind a proxy every request comes from its address: sign-in limits would be
        # shared by everyone, and one client's failures would lock all others out.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    from app import models  # noqa: F401  (tables must be known before migrations run)
    from app.extensions import (
        db,
        init_autocommit_reads,
        init_redis,
        init_utc_times,
        mail,
        migrate,
        sock,
    )

    db.init_app(app)
    init_utc_times(app)
    migrate.init_app(app, db, directory=str(root / "migrations"))
    mail.init_app(app)
    sock.init_app(app)
    init_redis(app)

    from app.api import bp as api_bp
    from app.api.receivers import bp as receivers_bp
    from app.auth import bp as auth_bp
    from app.auth.access import enforce_access
    from app.auth.csrf import csrf_token
    from app.cli import register_commands
    from app.errors import register_error_handlers
    from app.health import bp as health_bp
    from app.metrics import init_app as init_metrics
    from app.realtime import init_app as init_realtime
    from app.routing import init_routing
    from app.security.headers import init_app as init_security_headers
    from app.web import bp as web_bp

    init_routing(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(receivers_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(auth_bp)
    # Before the access policy, which reads the token or the user.
    init_autocommit_reads(app)
    # Deny by default: every request passes the access policy first.
    app.before_request(enforce_access)
    app.jinja_env.globals["csrf_token"] = csrf_token
    init_security_headers(app)
    init_realtime(app)
    init_metrics(app)
    register_error_handlers(app)
    register_commands(app)

    from app.alerts.triggers import connect as connect_alert_triggers

    connect_alert_triggers(app)
    return app
