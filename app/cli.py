"""Flask commands: `flask --app app partitions`, `flask --app app scheduler`."""

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

    @app.cli.command("scheduler")
    def scheduler_command():
        """Register the periodic jobs and run the scheduler until stopped."""
        from app.jobs.schedule import make_scheduler, reconcile

        scheduler = make_scheduler()
        click.echo(f"periodic jobs: {reconcile(scheduler)}")
        scheduler.run()
