"""Ops repair: the repair log (bulk action reports and manual rule runs) (issue 6)

Revision ID: 0012
Revises: 0011

One row per bulk repair or "run now" of a rule: who, when, which action with which
parameters, and the result for each instance, kept for the audit trail and the CSV report.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table('repair_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('params', _json(), nullable=False),
    sa.Column('results', _json(), nullable=False),
    sa.Column('counts', _json(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repair_log'))
    )
    with op.batch_alter_table('repair_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_repair_log_at'), ['at'], unique=False)


def downgrade():
    with op.batch_alter_table('repair_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_repair_log_at'))

    op.drop_table('repair_log')
