"""Alerting: webhook secrets, violation lifecycle columns, one open violation per episode,
and the delivery log.

Revision ID: 0003_alerting
Revises: 0002_statistics
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_alerting"
down_revision = "0002_statistics"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("alert_configs", sa.Column("webhook_secret", sa.Text(), nullable=True), schema="logs")
    # Configs made before this revision get a secret of their own.
    op.execute("UPDATE logs.alert_configs SET webhook_secret ="
               " replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')")
    op.alter_column("alert_configs", "webhook_secret", nullable=False, schema="logs")
    op.add_column("alert_configs", sa.Column("repeat_interval_minutes", sa.Integer(), server_default=sa.text("60"), nullable=False), schema="logs")

    op.add_column("alert_violations", sa.Column("config_id", sa.Integer(), nullable=True), schema="logs")
    op.add_column("alert_violations", sa.Column("peak_count", sa.Integer(), server_default=sa.text("0"), nullable=False), schema="logs")
    op.add_column("alert_violations", sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True), schema="logs")
    op.add_column("alert_violations", sa.Column("resolution", sa.Text(), nullable=True), schema="logs")
    op.create_foreign_key(
        "alert_violations_config_id_fkey", "alert_violations", "alert_configs", ["config_id"], ["id"],
        source_schema="logs", referent_schema="logs", ondelete="SET NULL",
    )
    op.create_index(
        "alert_violations_open_idx", "alert_violations", ["service", "level"], unique=True,
        schema="logs", postgresql_where=sa.text("resolved_at IS NULL"),
    )

    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("violation_id", sa.Integer(), nullable=True),
        sa.Column("config_id", sa.Integer(), nullable=True),
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
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["config_id"], ["logs.alert_configs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["violation_id"], ["logs.alert_violations.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        schema="logs",
    )
    op.create_index("alert_deliveries_delivery_id_idx", "alert_deliveries", ["delivery_id"], schema="logs")
    op.create_index("alert_deliveries_status_next_idx", "alert_deliveries", ["status", "next_attempt_at"], schema="logs")
    op.create_index("alert_deliveries_violation_idx", "alert_deliveries", ["violation_id"], schema="logs")


def downgrade():
    op.drop_table("alert_deliveries", schema="logs")
    op.drop_index("alert_violations_open_idx", table_name="alert_violations", schema="logs")
    op.drop_constraint("alert_violations_config_id_fkey", "alert_violations", schema="logs", type_="foreignkey")
    for column in ("resolution", "last_notified_at", "peak_count", "config_id"):
        op.drop_column("alert_violations", column, schema="logs")
    op.drop_column("alert_configs", "repeat_interval_minutes", schema="logs")
    op.drop_column("alert_configs", "webhook_secret", schema="logs")
