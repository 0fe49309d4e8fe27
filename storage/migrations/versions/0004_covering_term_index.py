"""the level-3 term index covers article ids, so a lookup reads only the index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("article_terms", schema=None) as batch_op:
        batch_op.create_index(
            "ix_article_terms_term_at_article", ["term", "at", "article_id"], unique=False
        )
        batch_op.drop_index("ix_article_terms_term_at")


def downgrade() -> None:
    with op.batch_alter_table("article_terms", schema=None) as batch_op:
        batch_op.create_index("ix_article_terms_term_at", ["term", "at"], unique=False)
        batch_op.drop_index("ix_article_terms_term_at_article")
