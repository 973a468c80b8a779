"""Let ingest update templates in place: drop the index on last_seen.

Every batch moves last_seen of each template it holds. With last_seen indexed, each such
update wrote a new entry into all three of the table's indexes; without it the update is
a heap-only (HOT) one that touches no index. Only retention's daily delete of templates not
seen for months filtered on it, and it reads a table of a few thousand rows.

Revision ID: 0009_templates_hot_updates
Revises: 0008_tier_changes
Create Date: 2026-11-27
"""

from alembic import op

revision = "0009_templates_hot_updates"
down_revision = "0008_tier_changes"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("templates_last_seen_idx", table_name="templates", schema="logs")


def downgrade():
    op.create_index("templates_last_seen_idx", "templates", ["last_seen"], schema="logs")
