"""PostgreSQL vacuums the band and term index tables after every 100,000 inserted rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

A batch lookup reads each term's newest postings by an index-only scan, which visits the
table for every row no vacuum has marked visible yet: with 9,000 articles stored, a
lookup of 100 articles took 145-182 ms before a VACUUM of ``article_terms`` and 105-138
ms after. PostgreSQL's default vacuums an insert-only table after it grew by a fifth, so
on a large store the newest rows, the ones looked up, were never vacuumed. (Autovacuum
must be on; PostgreSQL 13 and later.) SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("article_terms", "article_bands")
OPTIONS = ("autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_insert_threshold")


def _applies() -> bool:
    dialect = op.get_bind().dialect
    return dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= (13,)


def upgrade() -> None:
    if not _applies():
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET ({OPTIONS[0]} = 0, {OPTIONS[1]} = 100000)")


def downgrade() -> None:
    if not _applies():
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(OPTIONS)})")
