"""Log store: partitioned entries, minute rollups, alert tables and job runs.

Revision ID: 0001_log_store
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_log_store"
down_revision = None
branch_labels = None
depends_on = None

LEVEL_CHECK = "level IN ('debug', 'info', 'warning', 'error', 'critical')"


def upgrade():
    op.execute("CREATE SCHEMA IF NOT EXISTS logs")
    op.execute("CREATE SEQUENCE logs.entries_id_seq")
    # Daily partitions are created by the application (ingest and a scheduled job),
    # not by migrations: they depend on the dates of the data.
    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger(), server_default=sa.text("nextval('logs.entries_id_seq')"), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("logger", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint(LEVEL_CHECK, name="entries_level_check"),
        sa.PrimaryKeyConstraint("id", "timestamp"),
        schema="logs",
        postgresql_partition_by="RANGE (timestamp)",
    )
    op.execute("ALTER SEQUENCE logs.entries_id_seq OWNED BY logs.entries.id")
    op.create_index("entries_timestamp_id_idx", "entries", ["timestamp", "id"], schema="logs")
    op.create_index("entries_service_timestamp_id_idx", "entries", ["service", "timestamp", "id"], schema="logs")
    op.create_index("entries_level_timestamp_id_idx", "entries", ["level", "timestamp", "id"], schema="logs")
    op.create_index(
        "entries_fingerprint_timestamp_idx", "entries", ["fingerprint", "timestamp"],
        schema="logs", postgresql_where=sa.text("fingerprint IS NOT NULL"),
    )

    op.create_table(
        "rollup_minute",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(LEVEL_CHECK, name="rollup_minute_level_check"),
        sa.PrimaryKeyConstraint("minute", "service", "level"),
        schema="logs",
    )
    op.create_index("rollup_minute_service_minute_idx", "rollup_minute", ["service", "minute"], schema="logs")

    op.create_table(
        "alert_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("error_threshold_per_min", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("warning_threshold_per_min", sa.Integer(), server_default=sa.text("50"), nullable=False),
        sa.Column("alert_email", sa.Text(), nullable=True),
        sa.Column("alert_webhook_url", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service"),
        schema="logs",
    )
    op.create_table(
        "alert_violations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("current_count", sa.Integer(), nullable=False),
        sa.Column("threshold_value", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alert_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="logs",
    )
    op.create_index(
        "alert_violations_service_timestamp_idx", "alert_violations", ["service", "timestamp"], schema="logs"
    )
    op.create_table(
        "job_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_type", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="logs",
    )
    op.create_index("job_executions_type_started_idx", "job_executions", ["job_type", "started_at"], schema="logs")


def downgrade():
    op.drop_table("job_executions", schema="logs")
    op.drop_table("alert_violations", schema="logs")
    op.drop_table("alert_configs", schema="logs")
    op.drop_table("rollup_minute", schema="logs")
    # Dropping the parent drops every daily partition and the owned id sequence with it.
    op.drop_table("entries", schema="logs")
    op.execute("DROP SCHEMA IF EXISTS logs")
