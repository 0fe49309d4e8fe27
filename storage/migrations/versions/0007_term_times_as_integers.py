"""term index times are integers of microseconds on PostgreSQL too

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

A batch lookup returns each term's postings with their times. With ``timestamp with time
zone`` rows, PostgreSQL turned each time into microseconds by numeric arithmetic, 40% of
the statement's time. SQLite stores them so since 0005 (``models.IndexTime``). On
PostgreSQL the column is rewritten, with its primary key: about 2 s per 650,000 term rows
(23,000 articles).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's are integers already
    # Exact: EXTRACT gives numeric seconds with the microseconds as decimals (PostgreSQL
    # 14 and later; a double before, which round() brings back to the microsecond).
    op.execute("ALTER TABLE article_terms ALTER COLUMN at TYPE BIGINT "
               "USING round(EXTRACT(EPOCH FROM at) * 1000000)::bigint")  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE article_terms ALTER COLUMN at TYPE TIMESTAMP WITH TIME ZONE "
               "USING TIMESTAMPTZ 'epoch' + at * INTERVAL '1 microsecond'")  # fmt: skip
