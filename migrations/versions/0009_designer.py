"""Admin designer: the audit trail of saves, deploys and rollbacks (issue 6)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "designer_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
            name=op.f("fk_designer_audit_deployment_id_deployment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_designer_audit")),
    )
    with op.batch_alter_table("designer_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_designer_audit_at"), ["at"], unique=False)


def downgrade():
    with op.batch_alter_table("designer_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_designer_audit_at"))

    op.drop_table("designer_audit")
