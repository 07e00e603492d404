"""an index for purging idempotency records by age

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 13:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `settlement ledger purge-expired` deletes by age every day; without it, each run scans the table.
    op.create_index("ix_requests_created", "requests", ["created_at_us"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_requests_created", table_name="requests")
