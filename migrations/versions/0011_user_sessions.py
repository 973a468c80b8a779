"""Signed-in sessions kept on the server, so that signing out ends them.

A session cookie is signed, and Flask re-signs it on every request: a copy taken before
its owner signed out stayed usable as long as it was used. Each sign-in now records a
session that its cookie names; signing out, a new password or deleting the user ends it.
Cookies made before name no session: upgrading signs everyone out once.

Revision ID: 0011_user_sessions
Revises: 0010_read_tokens_unpinned
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_user_sessions"
down_revision = "0010_read_tokens_unpinned"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user_sessions",
        sa.Column("id_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["logs.users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
        schema="logs",
    )
    op.create_index("ix_logs_user_sessions_user_id", "user_sessions", ["user_id"],
                    schema="logs")


def downgrade():
    op.drop_table("user_sessions", schema="logs")
