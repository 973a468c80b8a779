"""Idempotency keys of ingest requests.

Revision ID: 0004_ingest_keys
Revises: 0003_alerting
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_ingest_keys"
down_revision = "0003_alerting"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ingest_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
        schema="logs",
    )
    op.create_index("ingest_keys_created_at_idx", "ingest_keys", ["created_at"], schema="logs")


def downgrade():
    op.drop_table("ingest_keys", schema="logs")
