"""Inbox: owner and id indexes on the sales records, for "On my customers" (issue 4)

Revision ID: 0017
Revises: 0015

The tab starts from the records of the owners a user sees. With (owner_id, id) PostgreSQL reads
their ids from the index alone instead of one table page per record. Each replaces the plain
owner_id index, which it covers, so writes maintain no more indexes than before; customers keep
their (owner_id, tier) index for pool recycling, with id added at its end.
docs/inbox-performance.md says which query uses them.
"""
from alembic import op

revision = '0017'
down_revision = '0015'
branch_labels = None
depends_on = None

TABLES = ('lead', 'opportunity', 'quote', 'sales_order')


def upgrade():
    for table in TABLES:
        op.create_index(op.f(f'ix_{table}_owner_id_id'), table, ['owner_id', 'id'], unique=False)
        op.drop_index(op.f(f'ix_{table}_owner_id'), table_name=table)
    op.drop_index('ix_customer_owner_tier', table_name='customer')
    op.create_index('ix_customer_owner_tier', 'customer', ['owner_id', 'tier', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_customer_owner_tier', table_name='customer')
    op.create_index('ix_customer_owner_tier', 'customer', ['owner_id', 'tier'], unique=False)
    for table in reversed(TABLES):
        op.create_index(op.f(f'ix_{table}_owner_id'), table, ['owner_id'], unique=False)
        op.drop_index(op.f(f'ix_{table}_owner_id_id'), table_name=table)
