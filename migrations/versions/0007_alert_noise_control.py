"""Alert noise control: silences, maintenance windows, acknowledgement, `for` duration,
evaluation interval, per-channel rate limits with digests, and archive tables.

Revision ID: 0007_alert_noise_control
Revises: 0006_stats_indexes
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_alert_noise_control"
down_revision = "0006_stats_indexes"
branch_labels = None
depends_on = None

CONFIG_COLUMNS = (
    ("for_minutes", "1"),
    ("min_evaluation_interval_seconds", "0"),
    ("rate_limit_count", "10"),
    ("rate_limit_minutes", "10"),
)


def _violation_columns() -> list[sa.Column]:
    """The columns shared by live and archived violations (config_id comes separately)."""
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("current_count", sa.Integer(), nullable=False),
        sa.Column("peak_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("threshold_value", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("alert_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("silenced", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("notification_held", sa.Boolean(), server_default=sa.text("false"),
                  nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
    ]


def _delivery_columns() -> list[sa.Column]:
    """The columns shared by live and archived deliveries (ids of others come separately)."""
    return [
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("digest_id", sa.Text(), nullable=True),
    ]


def upgrade():
    for name, default in CONFIG_COLUMNS:
        op.add_column("alert_configs", sa.Column(name, sa.Integer(),
                      server_default=sa.text(default), nullable=False), schema="logs")
    op.add_column("alert_configs", sa.Column("last_evaluated_at", sa.DateTime(timezone=True),
                                             nullable=True), schema="logs")

    for name in ("silenced", "notification_held"):
        op.add_column("alert_violations", sa.Column(name, sa.Boolean(),
                      server_default=sa.text("false"), nullable=False), schema="logs")
    op.add_column("alert_violations", sa.Column("acknowledged_at", sa.DateTime(timezone=True),
                                                nullable=True), schema="logs")
    op.add_column("alert_violations", sa.Column("acknowledged_by", sa.Text(), nullable=True),
                  schema="logs")

    op.add_column("alert_deliveries", sa.Column("held_until", sa.DateTime(timezone=True),
                                                nullable=True), schema="logs")
    op.add_column("alert_deliveries", sa.Column("digest_id", sa.Text(), nullable=True),
                  schema="logs")
    op.create_index("alert_deliveries_config_created_idx", "alert_deliveries",
                    ["config_id", "created_at"], schema="logs")

    op.create_table(
        "alert_rate_windows",
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["config_id"], ["logs.alert_configs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("config_id", "channel"),
        schema="logs",
    )
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("level", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_by", sa.Text(), nullable=True),
        schema="logs",
    )
    op.create_index("alert_silences_ends_at_idx", "alert_silences", ["ends_at"], schema="logs")
    op.create_table(
        "alert_maintenance_windows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("level", sa.Text(), nullable=True),
        sa.Column("weekdays", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        schema="logs",
    )
    op.create_table(
        "alert_violations_archive",
        *_violation_columns(),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        schema="logs",
    )
    op.create_index("alert_violations_archive_service_timestamp_idx",
                    "alert_violations_archive", ["service", "timestamp"], schema="logs")
    op.create_table(
        "alert_deliveries_archive",
        *_delivery_columns(),
        sa.Column("violation_id", sa.Integer(), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        schema="logs",
    )
    op.create_index("alert_deliveries_archive_created_idx", "alert_deliveries_archive",
                    ["created_at"], schema="logs")


def downgrade():
    for table in ("alert_deliveries_archive", "alert_violations_archive",
                  "alert_maintenance_windows", "alert_silences", "alert_rate_windows"):
        op.drop_table(table, schema="logs")
    op.drop_index("alert_deliveries_config_created_idx", table_name="alert_deliveries",
                  schema="logs")
    for column in ("digest_id", "held_until"):
        op.drop_column("alert_deliveries", column, schema="logs")
    for column in ("acknowledged_by", "acknowledged_at", "notification_held", "silenced"):
        op.drop_column("alert_violations", column, schema="logs")
    op.drop_column("alert_configs", "last_evaluated_at", schema="logs")
    for name, _ in reversed(CONFIG_COLUMNS):
        op.drop_column("alert_configs", name, schema="logs")
