"""Manager designer: pipelines, stages and approval tables (issue 6)

Revision ID: 0010
Revises: 0009

Placeholder in the migration chain until its feature lands; it changes nothing yet.
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
