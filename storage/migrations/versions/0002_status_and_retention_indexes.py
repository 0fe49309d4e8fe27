"""indexes for status (entries per source in 24 h) and retention (old bodies)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index("ix_articles_fetched_source", ["fetched", "source"], unique=False)
        batch_op.create_index("ix_articles_pruned_fetched", ["pruned", "fetched"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index("ix_articles_pruned_fetched")
        batch_op.drop_index("ix_articles_fetched_source")
