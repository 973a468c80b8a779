"""Flask commands: partitions, scheduler, users, tokens, listen, logs import and demo
(`flask --app app --help`)."""

import signal
import threading
from contextlib import contextmanager

import click
from flask import Flask


def register_commands(app: Flask) -> None:
    """Attach Logdash's commands to the app's CLI."""

    @app.cli.command("partitions")
    @click.option("--days-ahead", type=click.IntRange(0, 366), default=None,
                  help="Days after today to create.")
    def partitions_command(days_ahead):
        """Create the daily log partitions for today and the days ahead."""
        from app.ingest.partitions import ensure_partitions_ahead

        days = app.config["LOGDASH_PARTITION_DAYS_AHEAD"] if days_ahead is None else days_ahead
        for name in ensure_partitions_ahead(days):
            click.echo(name)

    register_access_commands(app)
    register_ingest_commands(app)

    @app.cli.command("scheduler")
    def scheduler_command():
        """Register the periodic jobs and run the scheduler until stopped."""
        from app.jobs.schedule import make_scheduler, reconcile, run_forever

        scheduler = make_scheduler()
        click.echo(f"periodic jobs: {reconcile(scheduler)}")
        run_forever(scheduler)

    _say_when_postgresql_is_away(app.cli)


def _say_when_postgresql_is_away(group: click.Group) -> None:
    """Make each of the group's commands (and its subgroups') end in one line, not a
    traceback, when PostgreSQL cannot be reached (not started, a wrong DATABASE_URL)."""
    import functools

    import psycopg
    from sqlalchemy.exc import OperationalError

    def wrapped(callback):
        """The callback, its connection failures said in a line."""
        @functools.wraps(callback)
        def run(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except (OperationalError, psycopg.OperationalError) as error:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
                raise click.ClickException(f"cannot reach PostgreSQL: {reason}") from None
        return run

    for command in group.commands.values():
        if isinstance(command, click.Group):
            _say_when_postgresql_is_away(command)
        elif command.callback is not None:
            command.callback = wrapped(command.callback)

def register_access_commands(app: Flask) -> None:
    """`flask users ...` and `flask tokens ...`."""
    from app.auth.credentials import (
        CredentialError,
        create_token,
        create_user,
        list_tokens,
        revoke_token,
        set_password,
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

    @users.command("set-password")
    @click.argument("username")
    @click.password_option(help="At least 12 characters; asked for when not given.")
    def set_password_command(username, password):
        """Give a user a new password, signing out everywhere they signed in."""
        try:
            set_password(username, password)
        except CredentialError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"new password set for {username}; their sessions are signed out")

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
        """List tokens (never their values): id, prefix, scope, state, name, last use, and
        the service a token is pinned to."""
        for token in list_tokens():
            state = "revoked" if token.revoked_at else "live"
            used = token.last_used_at.isoformat() if token.last_used_at else "never used"
            click.echo(f"{token.id}\t{token.prefix}…\t{token.scope}\t{state}\t{token.name}"
                       f"\t{used}\t{token.service or '-'}")

    @tokens.command("revoke")
    @click.argument("token_id", type=int)
    def revoke_token_command(token_id):
        """Revoke a token by id."""
        if not revoke_token(token_id):
            raise click.ClickException(f"no live token with id {token_id}")
        click.echo(f"revoked token {token_id}")

    app.cli.add_command(users)
    app.cli.add_command(tokens)


PORT_OPTIONS = ("syslog_udp", "syslog_tcp", "gelf_udp", "gelf_tcp")


def register_ingest_commands(app: Flask) -> None:
    """`flask listen`, `flask logs import` and `flask demo`."""
    from app.ingest.importer import FORMATS

    @app.cli.command("listen")
    @click.option("--bind", default=None, help="Address to listen on [LOGDASH_LISTEN_BIND].")
    @click.option("--syslog-udp-port", "syslog_udp", default=None,
                  help="0 or off disables [LOGDASH_SYSLOG_UDP_PORT, 5514].")
    @click.option("--syslog-tcp-port", "syslog_tcp", default=None,
                  help="[LOGDASH_SYSLOG_TCP_PORT, 5514]")
    @click.option("--gelf-udp-port", "gelf_udp", default=None,
                  help="[LOGDASH_GELF_UDP_PORT, 12201]")
    @click.option("--gelf-tcp-port", "gelf_tcp", default=None,
                  help="[LOGDASH_GELF_TCP_PORT, 12201]")
    def listen_command(bind, **ports):
        """Receive syslog and GELF over UDP and TCP until stopped."""
        import asyncio
        import logging

        from app.listeners.server import serve
        from app.listeners.settings import listener_settings, parse_port

        try:
            overrides = {name: parse_port(f"--{name.replace('_', '-')}-port", value)
                         for name, value in ports.items() if value is not None}
            if bind:
                overrides["bind"] = bind
            settings = listener_settings(app.config, **overrides)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

        def started(addresses: dict) -> None:
            """Say where each receiver listens."""
            for name, (host, port) in addresses.items():
                click.echo(f"listening: {name} on {host}:{port}")
            if not addresses:
                click.echo("no receiver is enabled; nothing to do")

        try:
            asyncio.run(serve(app, settings, on_start=started))
        except OSError as error:  # a port in use, an address not of this machine
            raise click.ClickException(f"cannot listen on {settings.bind}: {error}") from None

    logs = click.Group("logs", help="Work with stored logs.")

    @logs.command("import")
    @click.argument("files", nargs=-1, required=True)
    @click.option("--service", required=True,
                  help="Service of lines that do not name one (all plain lines).")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
                  show_default=True)
    @click.option("--resume", is_flag=True,
                  help="Continue each file after its last committed batch (in the batch"
                       " size of that import).")
    @click.option("--batch-size", type=click.IntRange(1, 50_000), default=1000,
                  show_default=True)
    def import_command(files, service, fmt, resume, batch_size):
        """Import log files (.gz too; - for standard input) through the ingest path."""
        import time
        from pathlib import Path

        from app.ingest.importer import ResumeError
        from app.ingest.records import InvalidLine, service_name

        try:
            service_name(service)
        except InvalidLine as error:
            raise click.BadParameter(str(error), param_hint="--service") from None
        if resume and "-" in files:
            raise click.BadParameter("standard input cannot be read again from where it was"
                                     " left; import what is left of it without --resume",
                                     param_hint="--resume")
        state_folder = Path(app.instance_path) / "imports"
        totals = [0, 0]
        with _stop_on_ctrl_c() as stop_asked:
            for name in files:
                if stop_asked():  # asked between two files: the next is not begun
                    raise click.ClickException(f"interrupted before {name}")
                started = time.monotonic()
                try:
                    summary = _import_one(app, name, service, fmt, state_folder, resume,
                                          batch_size, stop_asked)
                except (OSError, ResumeError) as error:
                    raise click.ClickException(str(error)) from None
                totals[0] += summary.accepted
                totals[1] += summary.rejected
                _echo_summary(summary, time.monotonic() - started)
                if summary.damaged:
                    raise click.ClickException(
                        f"{name} is cut short or damaged: its lines before that point are"
                        " stored")
                if summary.interrupted:
                    again = ("run the same command with --resume to go on from there"
                             if name != "-" else "standard input cannot be resumed")
                    raise click.ClickException(
                        f"interrupted: {name} is stored up to the last batch above; {again}")
        if len(files) > 1:
            click.echo(f"total: {totals[0]} accepted, {totals[1]} rejected")
        if totals[1] and not totals[0]:
            raise click.ClickException("no line was accepted")

    app.cli.add_command(logs)

    @app.cli.command("demo")
    @click.option("--lines", type=click.IntRange(0), default=10_000, show_default=True,
                  help="Lines of history to add; the error bursts come on top.")
    @click.option("--hours", type=click.FloatRange(0.1, 24 * 29), default=2.0,
                  show_default=True, help="Spread them over this many past hours.")
    @click.option("--bursts", type=click.IntRange(0), default=3, show_default=True,
                  help="Error bursts within those hours, 40 to 150 lines each.")
    @click.option("--follow", is_flag=True, help="Then keep sending lines until stopped.")
    @click.option("--rate", type=click.FloatRange(0.1, 1000), default=5.0, show_default=True,
                  help="Lines per second with --follow.")
    @click.option("--stop-after", type=click.FloatRange(0, min_open=True), default=None,
                  help="With --follow: stop after this many seconds (for scripts).")
    @click.option("--seed", type=int, default=None, help="Make the traffic repeatable.")
    @click.option("--force", is_flag=True, help="Add demo lines even if logs exist.")
    def demo_command(lines, hours, bursts, follow, rate, stop_after, seed, force):
        """Fill an empty instance with realistic traffic (Loghub samples)."""
        if stop_after is not None and not follow:
            raise click.BadParameter("only goes with --follow", param_hint="--stop-after")
        _run_demo(app, lines, hours, bursts, follow, rate, stop_after, seed, force)


@contextmanager
def _stop_on_ctrl_c():
    """While inside: the first Ctrl-C asks the import to stop after the batch it is storing
    (yielded: whether it was asked); a second stops at once, as Ctrl-C does."""
    asked = threading.Event()

    def ask(_signum, _frame) -> None:
        """Note the request, or give up waiting for the batch."""
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        click.echo("\nstopping after the batch being stored (Ctrl-C again: at once)",
                   err=True)

    if threading.current_thread() is not threading.main_thread():  # signals go to that one
        yield asked.is_set
        return
    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _import_one(app: Flask, name, service, fmt, state_folder, resume, batch_size, stop_asked):
    """Import one file with a progress bar on standard error."""
    import sys

    from app.ingest.importer import Source, import_source

    source = Source(name)
    try:
        with click.progressbar(length=source.size or 0, label=name, file=sys.stderr,
                               show_eta=True, show_percent=True) as bar:

            def advance(position: int) -> None:
                """Move the bar to the bytes read so far."""
                bar.update(position - bar.pos)

            return import_source(source, service, fmt, app.config, state_folder, resume,
                                 batch_size, on_progress=advance, stop_asked=stop_asked)
    finally:
        source.close()


def _echo_summary(summary, seconds: float) -> None:
    """Print what one file's import did."""
    resumed = f", resumed at byte {summary.resumed_from}" if summary.resumed_from else ""
    replayed = (f", {summary.replayed_batches} batches already stored by an interrupted run"
                if summary.replayed_batches else "")
    click.echo(f"{summary.name}: {summary.accepted} accepted, {summary.rejected} rejected"
               f" in {seconds:.1f} s{resumed}{replayed}")
    for error in summary.errors:
        click.echo(f"  {error}")
    if summary.rejected > len(summary.errors):
        click.echo(f"  ... and {summary.rejected - len(summary.errors)} more")


def _run_demo(app: Flask, lines, hours, bursts, follow, rate, stop_after, seed, force):
    """The demo command: history first, then the trickle with --follow."""
    import random
    import signal
    import time
    from datetime import UTC, datetime

    from app import demo

    if not force and not demo.instance_is_empty():
        raise click.ClickException("this instance already has logs; --force adds demo"
                                   " traffic anyway")
    rng = random.Random(seed)  # noqa: S311  (made-up traffic, not secrets)
    pools, origin = demo.load_pools(app, rng)
    click.echo(f"demo: {len(pools)} services from {origin}")
    history, described = demo.history(pools, lines, hours, bursts, rng, datetime.now(UTC))
    accepted, rejected = demo.store(app, history, rng)
    click.echo(f"demo: {accepted} lines over the last {hours:g} h ({rejected} rejected)")
    for burst in described:
        click.echo(f"  error burst: {burst}")
    if not follow:
        return
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    deadline = None if stop_after is None else time.monotonic() + stop_after

    def keep_going() -> bool:
        """Until SIGTERM, Ctrl-C or --stop-after."""
        return not stopping and (deadline is None or time.monotonic() < deadline)

    click.echo(f"demo: sending about {rate:g} lines a second (Ctrl-C stops)")
    try:
        sent = demo.follow(app, pools, rate, rng, keep_going, click.echo)
    except KeyboardInterrupt:
        sent = None
    click.echo("demo: stopped" + (f" after {sent} more lines" if sent is not None else ""))
