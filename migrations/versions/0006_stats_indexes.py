"""Cover the hourly template counts for top errors and their series.

Revision ID: 0006_stats_indexes
Revises: 0005_users_tokens
Create Date: 2026-11-27
"""

from alembic import op

revision = "0006_stats_indexes"
down_revision = "0005_users_tokens"
branch_labels = None
depends_on = None


def upgrade():
    # Top errors read the error and critical rows of a window: an index range by level, and
    # with the other columns included, an index-only scan.
    op.create_index("template_hourly_level_hour_idx", "template_hourly", ["level", "hour"],
                    schema="logs", postgresql_include=["service", "fingerprint", "count"])
    # Their series read a few templates' hours: index-only too, once it carries the counts.
    op.drop_index("template_hourly_fingerprint_idx", table_name="template_hourly", schema="logs")
    op.create_index("template_hourly_fingerprint_idx", "template_hourly", ["fingerprint", "hour"],
                    schema="logs", postgresql_include=["service", "level", "count"])


def downgrade():
    op.drop_index("template_hourly_fingerprint_idx", table_name="template_hourly", schema="logs")
    op.create_index("template_hourly_fingerprint_idx", "template_hourly", ["fingerprint", "hour"],
                    schema="logs")
    op.drop_index("template_hourly_level_hour_idx", table_name="template_hourly", schema="logs")
