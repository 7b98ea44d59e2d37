"""Ops console: indexes for instance filters and element counts (issue 6)

Revision ID: 0011
Revises: 0010

Records when a timer or message wait began (for the heatmap's average wait), and adds the
indexes behind the console's filters, its counts per status and the per-element counts.
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_customer_id'), ['customer_id'], unique=False)
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.create_index('ix_process_instance_process_status', ['process_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_process_instance_definition_status', ['definition_id', 'status', 'id'], unique=False, postgresql_include=['updated_at'])
        batch_op.create_index('ix_process_instance_status_started', ['status', 'started_at'], unique=False)
        batch_op.create_index('ix_process_instance_id_status', ['id'], unique=False, postgresql_include=['status'])

    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index('ix_human_task_open_element', ['bpmn_id', 'instance_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    with op.batch_alter_table('instance_timer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_instance_timer_waiting_element', ['bpmn_id', 'instance_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'waiting'"), sqlite_where=sa.text("status = 'waiting'"))

    with op.batch_alter_table('message_subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_message_subscription_element', ['bpmn_id', 'instance_id', 'created_at'], unique=False)

    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index('ix_incident_open', ['instance_id', 'bpmn_id', 'created_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))


def downgrade():
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_customer_id'))
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_open')

    with op.batch_alter_table('message_subscription', schema=None) as batch_op:
        batch_op.drop_index('ix_message_subscription_element')
        batch_op.drop_column('created_at')

    with op.batch_alter_table('instance_timer', schema=None) as batch_op:
        batch_op.drop_index('ix_instance_timer_waiting_element')
        batch_op.drop_column('created_at')

    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index('ix_human_task_open_element')

    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.drop_index('ix_process_instance_id_status')
        batch_op.drop_index('ix_process_instance_status_started')
        batch_op.drop_index('ix_process_instance_definition_status')
        batch_op.drop_index('ix_process_instance_process_status')
