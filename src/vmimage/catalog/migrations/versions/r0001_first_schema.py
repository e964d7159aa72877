"""The publishing service's first schema: publishers and tokens, offers, plans, SKUs, image
versions and disks, certification requests and reports.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "publishers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishers")),
        sa.UniqueConstraint("namespace", name=op.f("uq_publishers_namespace")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_fk", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["publisher_fk"],
            ["publishers.id"],
            name=op.f("fk_api_tokens_publisher_fk_publishers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_index(op.f("ix_api_tokens_publisher_fk"), "api_tokens", ["publisher_fk"])
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publisher_fk", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.String(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("container_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_fk"],
            ["publishers.id"],
            name=op.f("fk_offers_publisher_fk_publishers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("publisher_fk", "offer_id", name=op.f("uq_offers_publisher_fk_offer_id")),
    )
    op.create_index(op.f("ix_offers_publisher_fk"), "offers", ["publisher_fk"])
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_fk", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_fk"], ["offers.id"], name=op.f("fk_plans_offer_fk_offers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("offer_fk", "plan_id", name=op.f("uq_plans_offer_fk_plan_id")),
    )
    op.create_index(op.f("ix_plans_offer_fk"), "plans", ["offer_fk"])
    op.create_table(
        "skus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_fk", sa.Integer(), nullable=False),
        sa.Column("plan_fk", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("os_family", sa.String(length=16), nullable=False),
        sa.Column("os_type", sa.String(length=64), nullable=False),
        sa.Column("os_name", sa.Text(), nullable=False),
        sa.Column("image_type", sa.String(length=8), nullable=False),
        sa.Column("recommended_sizes", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("open_ports", sa.JSON(), nullable=False),
        sa.Column("questionnaire", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_fk"], ["offers.id"], name=op.f("fk_skus_offer_fk_offers"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["plan_fk"], ["plans.id"], name=op.f("fk_skus_plan_fk_plans"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skus")),
        sa.UniqueConstraint("offer_fk", "sku_id", name=op.f("uq_skus_offer_fk_sku_id")),
    )
    op.create_index(op.f("ix_skus_offer_fk"), "skus", ["offer_fk"])
    op.create_index(op.f("ix_skus_plan_fk"), "skus", ["plan_fk"])
    op.create_table(
        "image_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku_fk", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("gallery_tenant_id", sa.Text(), nullable=True),
        sa.Column("gallery_resource_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sku_fk"], ["skus.id"], name=op.f("fk_image_versions_sku_fk_skus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_versions")),
        sa.UniqueConstraint("sku_fk", "version", name=op.f("uq_image_versions_sku_fk_version")),
    )
    op.create_index(op.f("ix_image_versions_sku_fk"), "image_versions", ["sku_fk"])
    op.create_table(
        "certification_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_fk", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("questionnaire", sa.JSON(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.String(length=100), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_fk"],
            ["image_versions.id"],
            name=op.f("fk_certification_requests_version_fk_image_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification_requests")),
    )
    op.create_index(op.f("ix_certification_requests_version_fk"), "certification_requests", ["version_fk"])
    op.create_table(
        "disks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_fk", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("lun", sa.Integer(), nullable=True),
        sa.Column("file", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("host_caching", sa.String(length=16), nullable=True),
        sa.Column("empty_size", sa.Text(), nullable=True),
        sa.Column("sas_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("sas_fields", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_fk"],
            ["image_versions.id"],
            name=op.f("fk_disks_version_fk_image_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disks")),
    )
    op.create_index(op.f("ix_disks_version_fk"), "disks", ["version_fk"])
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_fk", sa.Integer(), nullable=False),
        sa.Column("request_fk", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_fk"],
            ["certification_requests.id"],
            name=op.f("fk_reports_request_fk_certification_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["version_fk"],
            ["image_versions.id"],
            name=op.f("fk_reports_version_fk_image_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index(op.f("ix_reports_request_fk"), "reports", ["request_fk"])
    op.create_index(op.f("ix_reports_version_fk"), "reports", ["version_fk"])


def downgrade() -> None:
    """Revert."""
    op.drop_index(op.f("ix_reports_version_fk"), table_name="reports")
    op.drop_index(op.f("ix_reports_request_fk"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_disks_version_fk"), table_name="disks")
    op.drop_table("disks")
    op.drop_index(op.f("ix_certification_requests_version_fk"), table_name="certification_requests")
    op.drop_table("certification_requests")
    op.drop_index(op.f("ix_image_versions_sku_fk"), table_name="image_versions")
    op.drop_table("image_versions")
    op.drop_index(op.f("ix_skus_plan_fk"), table_name="skus")
    op.drop_index(op.f("ix_skus_offer_fk"), table_name="skus")
    op.drop_table("skus")
    op.drop_index(op.f("ix_plans_offer_fk"), table_name="plans")
    op.drop_table("plans")
    op.drop_index(op.f("ix_offers_publisher_fk"), table_name="offers")
    op.drop_table("offers")
    op.drop_index(op.f("ix_api_tokens_publisher_fk"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("publishers")
