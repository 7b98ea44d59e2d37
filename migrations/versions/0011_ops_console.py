"""Ops console: indexes for instance filters and element counts (issue 6)

Revision ID: 0011
Revises: 0010

Placeholder in the migration chain until its feature lands; it changes nothing yet.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
