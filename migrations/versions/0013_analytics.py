"""Analytics: forecast entries, adjustments and weekly snapshots (issue 7)

Revision ID: 0013
Revises: 0012

Adds the reps' commit/best case per close month, managers' adjustments, weekly forecast
snapshots, and the indexes the funnel and forecast queries rely on.
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('forecast_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('commit_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('best_case_amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_forecast_entry_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_entry')),
    sa.UniqueConstraint('user_id', 'month', name=op.f('uq_forecast_entry_user_id'))
    )
    op.create_table('forecast_adjustment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('adjusted_by_id', sa.Integer(), nullable=False),
    sa.Column('adjusted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['adjusted_by_id'], ['app_user.id'], name=op.f('fk_forecast_adjustment_adjusted_by_id_app_user')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_forecast_adjustment_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_adjustment')),
    sa.UniqueConstraint('user_id', 'month', name=op.f('uq_forecast_adjustment_user_id'))
    )
    op.create_table('forecast_snapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('weighted', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('commit_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('best_case_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('adjusted_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_forecast_snapshot_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_snapshot')),
    sa.UniqueConstraint('week_start', 'user_id', 'month', name=op.f('uq_forecast_snapshot_week_start'))
    )
    with op.batch_alter_table('forecast_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forecast_snapshot_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_forecast_snapshot_month'), ['month'], unique=False)
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.create_index('ix_opportunity_status_expected_close', ['status', 'expected_close'], unique=False, postgresql_include=['owner_id', 'amount', 'win_rate_override', 'stage_win_rate'])
        batch_op.create_index('ix_opportunity_status_closed_at', ['status', 'closed_at'], unique=False, postgresql_include=['owner_id', 'amount'])
        batch_op.create_index('ix_opportunity_status_stage_since', ['status', 'stage', 'stage_since'], unique=False)
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.create_index('ix_stage_change_changed_at', ['changed_at'], unique=False, postgresql_include=['opportunity_id', 'to_stage', 'id'])
        batch_op.create_index('ix_stage_change_opportunity_changed', ['opportunity_id', 'changed_at', 'id'], unique=False, postgresql_include=['to_stage'])


def downgrade():
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_change_opportunity_changed')
        batch_op.drop_index('ix_stage_change_changed_at')
    with op.batch_alter_table('opportunity', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunity_status_stage_since')
        batch_op.drop_index('ix_opportunity_status_closed_at')
        batch_op.drop_index('ix_opportunity_status_expected_close')
    with op.batch_alter_table('forecast_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forecast_snapshot_month'))
        batch_op.drop_index(batch_op.f('ix_forecast_snapshot_user_id'))
    op.drop_table('forecast_snapshot')
    op.drop_table('forecast_adjustment')
    op.drop_table('forecast_entry')
