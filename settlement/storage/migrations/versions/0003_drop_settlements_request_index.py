"""drop the settlements (hospital_id, request_id) index that no query reads

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 16:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Idempotency and GetSettlement by request_id read the requests table; nothing reads settlements by
    # request_id. The index cost every settle an insert into a random page of its B-tree.
    op.drop_index("ix_settlements_hospital_request", table_name="settlements")


def downgrade() -> None:
    op.create_index("ix_settlements_hospital_request", "settlements", ["hospital_id", "request_id"], unique=False)
