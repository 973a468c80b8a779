"""Flask commands: partitions, scheduler, users and tokens (`flask --app app --help`)."""

import click
from flask import Flask


def register_commands(app: Flask) -> None:
    """Attach Logdash's commands to the app's CLI."""

    @app.cli.command("partitions")
    @click.option("--days-ahead", type=int, default=None, help="Days after today to create.")
    def partitions_command(days_ahead):
        """Create the daily log partitions for today and the days ahead."""
        from app.ingest.partitions import ensure_partitions_ahead

        days = app.config["LOGDASH_PARTITION_DAYS_AHEAD"] if days_ahead is None else days_ahead
        for name in ensure_partitions_ahead(days):
            click.echo(name)

    register_access_commands(app)

    @app.cli.command("scheduler")
    def scheduler_command():
        """Register the periodic jobs and run the scheduler until stopped."""
        from app.jobs.schedule import make_scheduler, reconcile

        scheduler = make_scheduler()
        click.echo(f"periodic jobs: {reconcile(scheduler)}")
        scheduler.run()


def register_access_commands(app: Flask) -> None:
    """`flask users ...` and `flask tokens ...`."""
    from app.auth.credentials import (
        CredentialError,
        create_token,
        create_user,
        list_tokens,
        revoke_token,
    )

    users = click.Group("users", help="People who sign in.")
    tokens = click.Group("tokens", help="API tokens for scripts and log shippers.")

    @users.command("create")
    @click.argument("username")
    @click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer")
    @click.password_option(help="At least 12 characters; asked for when not given.")
    def create_user_command(username, role, password):
        """Add a person who can sign in."""
        try:
            create_user(username, password, role)
        except CredentialError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"created {role} {username}")

    @users.command("ensure-admin")
    def ensure_admin_command():
        """Create user 'admin' with a random password if nobody can sign in yet."""
        import secrets

        from sqlalchemy import func, select

        from app.extensions import db
        from app.models import User

        if db.session.execute(select(func.count()).select_from(User)).scalar_one():
            return
        password = secrets.token_urlsafe(12)
        create_user("admin", password, "admin")
        click.echo(f"Created the first user: admin / {password}  (shown once; keep it)")

    @tokens.command("create")
    @click.option("--name", required=True, help="What the token is for.")
    @click.option("--scope", type=click.Choice(["ingest", "read", "admin"]), default="ingest")
    @click.option("--service", default=None, help="Only accept logs for this service.")
    def create_token_command(name, scope, service):
        """Make a token and print its value (shown once)."""
        try:
            token, plain = create_token(name, scope, service)
        except CredentialError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"token {token.id} ({scope}): {plain}")

    @tokens.command("list")
    def list_tokens_command():
        """List tokens (never their values)."""
        for token in list_tokens():
            state = "revoked" if token.revoked_at else "live"
            used = token.last_used_at.isoformat() if token.last_used_at else "never used"
            click.echo(f"{token.id}\t{token.prefix}…\t{token.scope}\t{state}\t{token.name}"
                       f"\t{used}")

    @tokens.command("revoke")
    @click.argument("token_id", type=int)
    def revoke_token_command(token_id):
        """Revoke a token by id."""
        if not revoke_token(token_id):
            raise click.ClickException(f"no live token with id {token_id}")
        click.echo(f"revoked token {token_id}")

    app.cli.add_command(users)
    app.cli.add_command(tokens)
