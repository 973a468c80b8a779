"""Read tokens carry no service pin.

A pin limits which service a token may send logs for; a read token sends nothing, so a pin
on one promised a limit that did not exist (it still read every service). Tokens made
before such pins were refused lose theirs, and the database now refuses them too.

Revision ID: 0010_read_tokens_unpinned
Revises: 0009_templates_hot_updates
Create Date: 2026-11-28
"""

from alembic import op

revision = "0010_read_tokens_unpinned"
down_revision = "0009_templates_hot_updates"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE logs.api_tokens SET service = NULL WHERE scope = 'read'")
    op.create_check_constraint("api_tokens_read_unpinned", "api_tokens",
                               "scope <> 'read' OR service IS NULL", schema="logs")


def downgrade():
    op.drop_constraint("api_tokens_read_unpinned", "api_tokens", schema="logs")
