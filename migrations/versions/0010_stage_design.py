"""Manager designer: owners of pipelines and approval tables, and their change records

Revision ID: 0010
Revises: 0009

`design_owner` maps a pipeline or approval table to the team whose managers may edit it;
`design_change` records every save of the stage and approval-table editors.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('design_owner',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('set_by', sa.String(length=80), nullable=True),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], name=op.f('fk_design_owner_team_id_team')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_design_owner')),
    sa.UniqueConstraint('kind', 'key', name=op.f('uq_design_owner_kind'))
    )
    with op.batch_alter_table('design_owner', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_design_owner_team_id'), ['team_id'], unique=False)

    op.create_table('design_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=True),
    sa.Column('process_version', sa.Integer(), nullable=True),
    sa.Column('changed_by', sa.String(length=80), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('summary', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], name=op.f('fk_design_change_deployment_id_deployment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_design_change'))
    )
    with op.batch_alter_table('design_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_design_change_key'), ['key'], unique=False)


def downgrade():
    with op.batch_alter_table('design_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_design_change_key'))

    op.drop_table('design_change')
    with op.batch_alter_table('design_owner', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_design_owner_team_id'))

    op.drop_table('design_owner')
