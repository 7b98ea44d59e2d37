"""Inbox: indexes for the inbox and completed lists (issue 4, inbox benchmark)

Revision ID: 0008
Revises: 0007

`completed_by` serves "Completed by me". The partial indexes hold open tasks only (the
"offered" ones only the unclaimed): "My tasks" by due date, the queues offered to a user, a
role or a team, and the tasks on a record. docs/inbox-performance.md says which query uses which.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

OPEN = "status = 'open'"
UNCLAIMED = "status = 'open' AND assignee IS NULL"
# Carried by the queues' and records' indexes (PostgreSQL only), for the filter's choices.
CHOICES = ['process_id', 'properties']
# name, columns, predicate (None: the whole table), included columns
INDEXES = (
    ('ix_human_task_completed_by', ['completed_by', 'status', 'completed_at'], None, []),
    ('ix_human_task_open_assignee', ['assignee', 'due_at', 'id'], OPEN, []),
    ('ix_human_task_offered_user', ['candidate_user', 'due_at', 'id'], UNCLAIMED, CHOICES),
    (
        'ix_human_task_offered_role',
        ['candidate_role', 'due_at', 'id'],
        UNCLAIMED,
        [*CHOICES, 'candidate_user'],
    ),
    (
        'ix_human_task_offered_team',
        ['candidate_team', 'due_at', 'id'],
        UNCLAIMED,
        [*CHOICES, 'candidate_user', 'candidate_role'],
    ),
    (
        'ix_human_task_open_subject',
        ['subject_type', 'subject_id', 'assignee', 'id'],
        OPEN,
        ['due_at', *CHOICES],
    ),
)


def upgrade():
    for name, columns, where, include in INDEXES:
        options = {}
        if where is not None:
            options = {'postgresql_where': sa.text(where), 'sqlite_where': sa.text(where)}
        if include:
            options['postgresql_include'] = include
        op.create_index(op.f(name), 'human_task', columns, unique=False, **options)


def downgrade():
    for name, *_ in reversed(INDEXES):
        op.drop_index(op.f(name), table_name='human_task')
