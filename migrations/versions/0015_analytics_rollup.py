"""Analytics: the funnel's daily roll-up of stage stays (issue 7)

Revision ID: 0015
Revises: 0014

Adds `funnel_entry_day` and `funnel_dwell_day` (stage stays added up per day), `funnel_deal`
(what each deal has added), `funnel_rollup` (per pipeline: built for which stages) and
`funnel_stale_deal` with the PostgreSQL triggers that fill it (deals changed without their
share being refreshed). The tables start empty; the rule `rebuild_funnel_rollup` fills them
(see docs/analytics.md).
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('funnel_entry_day',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline', sa.String(length=40), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('prev_day', sa.Date(), nullable=False),
    sa.Column('moved_on_day', sa.Date(), nullable=False),
    sa.Column('stays', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('won', sa.Integer(), nullable=False),
    sa.Column('lost', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funnel_entry_day')),
    sa.UniqueConstraint('pipeline', 'day', 'stage', 'prev_day', 'moved_on_day', name=op.f('uq_funnel_entry_day_pipeline'))
    )
    op.create_table('funnel_dwell_day',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline', sa.String(length=40), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('cell', sa.Integer(), nullable=False),
    sa.Column('stays', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Numeric(precision=24, scale=6), nullable=False),
    sa.Column('shortest', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('longest', sa.Numeric(precision=24, scale=6), nullable=True),
    sa.Column('lengths_known', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_funnel_dwell_day')),
    sa.UniqueConstraint('pipeline', 'day', 'stage', 'cell', name=op.f('uq_funnel_dwell_day_pipeline'))
    )
    op.create_table('funnel_deal',
    sa.Column('opportunity_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('pipeline', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('last_move_id', sa.Integer(), nullable=False),
    sa.Column('left_out', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('opportunity_id', name=op.f('pk_funnel_deal'))
    )
    op.create_table('funnel_rollup',
    sa.Column('pipeline', sa.String(length=40), nullable=False),
    sa.Column('stages', sa.Text(), nullable=False),
    sa.Column('left_out_deals', sa.Integer(), nullable=False),
    sa.Column('built_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pipeline', name=op.f('pk_funnel_rollup'))
    )


    op.create_table('funnel_stale_deal',
    sa.Column('opportunity_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('opportunity_id', name=op.f('pk_funnel_stale_deal'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        # Any change to a deal's history, amount, status or pipeline marks the deal;
        # refresh_funnel_deal takes the mark away in the same transaction.
        op.execute(MARK_FUNCTION)
        op.execute(
            'CREATE TRIGGER funnel_stale_move AFTER INSERT OR UPDATE OR DELETE ON stage_change '
            'FOR EACH ROW EXECUTE FUNCTION funnel_mark_stale()'
        )
        op.execute(
            'CREATE TRIGGER funnel_stale_deal AFTER UPDATE OF amount, status, pipeline '
            'ON opportunity FOR EACH ROW WHEN (OLD.amount IS DISTINCT FROM NEW.amount '
            'OR OLD.status IS DISTINCT FROM NEW.status '
            'OR OLD.pipeline IS DISTINCT FROM NEW.pipeline) EXECUTE FUNCTION funnel_mark_stale()'
        )


MARK_FUNCTION = """
CREATE FUNCTION funnel_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'opportunity' THEN
        INSERT INTO funnel_stale_deal (opportunity_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO funnel_stale_deal (opportunity_id) VALUES (OLD.opportunity_id)
            ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO funnel_stale_deal (opportunity_id) VALUES (NEW.opportunity_id)
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER funnel_stale_deal ON opportunity')
        op.execute('DROP TRIGGER funnel_stale_move ON stage_change')
        op.execute('DROP FUNCTION funnel_mark_stale()')
    op.drop_table('funnel_stale_deal')
    op.drop_table('funnel_rollup')
    op.drop_table('funnel_deal')
    op.drop_table('funnel_dwell_day')
    op.drop_table('funnel_entry_day')
