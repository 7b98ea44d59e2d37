"""Analytics: forecast entries, adjustments and weekly snapshots (issue 7)

Revision ID: 0013
Revises: 0012

Placeholder in the migration chain until its feature lands; it changes nothing yet.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
