"""Inbox: indexes for the inbox and completed lists (issue 4, inbox benchmark)

Revision ID: 0008
Revises: 0007

Placeholder in the migration chain until its feature lands; it changes nothing yet.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
