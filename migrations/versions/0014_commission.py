"""Commission plans, tiers, coefficients, runs, statements and their lines (issue 7)

Revision ID: 0014
Revises: 0013

Campaign figures need no table of their own: they are read from campaign, lead, opportunity
and receipt.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('commission_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('basis', sa.String(length=8), nullable=False),
    sa.Column('base_rate', sa.Numeric(precision=7, scale=4), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('cap', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_plan')),
    sa.UniqueConstraint('name', name=op.f('uq_commission_plan_name'))
    )
    op.create_table('commission_tier',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('lower_pct', sa.Numeric(precision=7, scale=2), nullable=False),
    sa.Column('multiplier', sa.Numeric(precision=6, scale=3), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['commission_plan.id'], name=op.f('fk_commission_tier_plan_id_commission_plan'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_tier')),
    sa.UniqueConstraint('plan_id', 'lower_pct', name=op.f('uq_commission_tier_plan_id'))
    )
    op.create_table('commission_plan_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['commission_plan.id'], name=op.f('fk_commission_plan_member_plan_id_commission_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_commission_plan_member_team_id_team')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_commission_plan_member_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_plan_member'))
    )
    with op.batch_alter_table('commission_plan_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_plan_member_plan_id'), ['plan_id'], unique=False)

    op.create_table('commission_coefficient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('coefficient', sa.Numeric(precision=4, scale=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_by', sa.String(length=80), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_commission_coefficient_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_coefficient')),
    sa.UniqueConstraint('user_id', 'period_start', name=op.f('uq_commission_coefficient_user_id'))
    )
    op.create_table('commission_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_by', sa.String(length=80), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calculated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=80), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_run')),
    sa.UniqueConstraint('period_start', name=op.f('uq_commission_run_period_start'))
    )
    op.create_table('commission_statement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('basis', sa.String(length=8), nullable=False),
    sa.Column('target', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('achieved', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('attainment_pct', sa.Numeric(precision=9, scale=2), nullable=True),
    sa.Column('coefficient', sa.Numeric(precision=4, scale=2), nullable=False),
    sa.Column('total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['commission_plan.id'], name=op.f('fk_commission_statement_plan_id_commission_plan')),
    sa.ForeignKeyConstraint(['run_id'], ['commission_run.id'], name=op.f('fk_commission_statement_run_id_commission_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_commission_statement_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_statement')),
    sa.UniqueConstraint('run_id', 'user_id', name=op.f('uq_commission_statement_run_id'))
    )
    with op.batch_alter_table('commission_statement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_statement_user_id'), ['user_id'], unique=False)

    op.create_table('commission_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=True),
    sa.Column('base', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('rate', sa.Numeric(precision=7, scale=4), nullable=False),
    sa.Column('tier', sa.String(length=40), nullable=False),
    sa.Column('multiplier', sa.Numeric(precision=6, scale=3), nullable=False),
    sa.Column('coefficient', sa.Numeric(precision=4, scale=2), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['statement_id'], ['commission_statement.id'], name=op.f('fk_commission_line_statement_id_commission_statement'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_line'))
    )
    with op.batch_alter_table('commission_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_line_statement_id'), ['statement_id'], unique=False)

    op.create_table('commission_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['commission_plan.id'], name=op.f('fk_commission_audit_plan_id_commission_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_commission_audit_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_audit'))
    )
    with op.batch_alter_table('commission_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_audit_plan_id'), ['plan_id'], unique=False)


def downgrade():
    with op.batch_alter_table('commission_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_audit_plan_id'))
        batch_op.drop_index(batch_op.f('ix_commission_audit_at'))
    op.drop_table('commission_audit')
    with op.batch_alter_table('commission_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_line_statement_id'))
    op.drop_table('commission_line')
    with op.batch_alter_table('commission_statement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_statement_user_id'))
    op.drop_table('commission_statement')
    op.drop_table('commission_run')
    op.drop_table('commission_coefficient')
    with op.batch_alter_table('commission_plan_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_plan_member_plan_id'))
    op.drop_table('commission_plan_member')
    op.drop_table('commission_tier')
    op.drop_table('commission_plan')
