"""When the finished buckets of a tier last changed, for caches of their sums.

Revision ID: 0008_tier_changes
Revises: 0007_alert_noise_control
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_tier_changes"
down_revision = "0007_alert_noise_control"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tier_changes",
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tier"),
        schema="logs",
    )


def downgrade():
    op.drop_table("tier_changes", schema="logs")
