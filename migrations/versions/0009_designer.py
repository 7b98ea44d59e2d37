"""Admin designer: process drafts and version metadata (issue 6)

Revision ID: 0009
Revises: 0008

Placeholder in the migration chain until its feature lands; it changes nothing yet.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
