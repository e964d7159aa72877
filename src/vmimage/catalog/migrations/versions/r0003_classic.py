"""The classic Create VM Image API: each publisher's subscription ID, management
certificates, VM images.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply. The subscription column is added nullable and filled row by row: SQLite cannot
    make an existing column NOT NULL without copying the table, and copying ``publishers``
    would cascade-delete every child row."""
    op.add_column("publishers", sa.Column("subscription_id", sa.String(length=36),
                                          nullable=True))
    publishers = sa.table("publishers", sa.column("id", sa.Integer()),
                          sa.column("subscription_id", sa.String(length=36)))
    bind = op.get_bind()
    for (row_id,) in bind.execute(sa.select(publishers.c.id)).all():
        bind.execute(publishers.update().where(publishers.c.id == row_id)
                     .values(subscription_id=str(uuid.uuid4())))
    op.create_index(op.f("ix_publishers_subscription_id"), "publishers", ["subscription_id"],
                    unique=True)
    op.create_table(
        "management_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_fk", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("thumbprint", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["publisher_fk"], ["publishers.id"],
                                name=op.f("fk_management_certificates_publisher_fk_publishers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_management_certificates")),
        sa.UniqueConstraint("sha256", name=op.f("uq_management_certificates_sha256")),
    )
    op.create_index(op.f("ix_management_certificates_publisher_fk"),
                    "management_certificates", ["publisher_fk"])
    op.create_table(
        "vm_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_fk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("os", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=32), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("tokens_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["publisher_fk"], ["publishers.id"],
                                name=op.f("fk_vm_images_publisher_fk_publishers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vm_images")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_vm_images_operation_id")),
        sa.UniqueConstraint("publisher_fk", "name", name=op.f("uq_vm_images_publisher_fk_name")),
    )
    op.create_index(op.f("ix_vm_images_publisher_fk"), "vm_images", ["publisher_fk"])


def downgrade() -> None:
    """Revert."""
    op.drop_index(op.f("ix_vm_images_publisher_fk"), table_name="vm_images")
    op.drop_table("vm_images")
    op.drop_index(op.f("ix_management_certificates_publisher_fk"),
                  table_name="management_certificates")
    op.drop_table("management_certificates")
    op.drop_index(op.f("ix_publishers_subscription_id"), table_name="publishers")
    with op.batch_alter_table("publishers") as batch:
        batch.drop_column("subscription_id")
