"""band and term index rows are keyed by what a lookup reads; SQLite keeps them in the key,
with term times as integers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

On SQLite both tables are rebuilt as ``WITHOUT ROWID`` tables (one B-tree each, where a
rowid table and an index held every row twice) and a term row's time becomes microseconds
since 1970 (``models.IndexTime``). On PostgreSQL the index becomes the primary key.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# SQLAlchemy stores a DateTime on SQLite as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC here).
_TEXT_TO_MICROS = (
    "CAST(strftime('%s', substr(at, 1, 19)) AS INTEGER) * 1000000"
    " + CAST(substr(at || '.000000', 21, 6) AS INTEGER)"
)
# SQLite's / and % truncate toward zero: before 1970 the fraction is counted up from the
# second below (floor), as datetime does.
_FRACTION = "((at % 1000000 + 1000000) % 1000000)"
_MICROS_TO_TEXT = (
    f"strftime('%Y-%m-%d %H:%M:%S', (at - {_FRACTION}) / 1000000, 'unixepoch')"
    f" || '.' || substr('000000' || {_FRACTION}, -6)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _dedupe("article_terms", "term, at, article_id")
        op.drop_index("ix_article_terms_term_at_article", table_name="article_terms")
        op.create_primary_key("pk_article_terms", "article_terms", ["term", "at", "article_id"])
        _dedupe("article_bands", "band, article_id")
        op.drop_index("ix_article_bands_band", table_name="article_bands")
        op.create_primary_key("pk_article_bands", "article_bands", ["band", "article_id"])
        return
    _replace("article_terms", _terms(sa.Integer()),
             f"SELECT DISTINCT term, {_TEXT_TO_MICROS}, article_id FROM article_terms",
             sa.PrimaryKeyConstraint("term", "at", "article_id", name="pk_article_terms"),
             sqlite_with_rowid=False)  # fmt: skip
    _replace("article_bands", _bands(), "SELECT DISTINCT band, article_id FROM article_bands",
             sa.PrimaryKeyConstraint("band", "article_id", name="pk_article_bands"),
             sqlite_with_rowid=False)  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("pk_article_terms", "article_terms", type_="primary")
        op.create_index("ix_article_terms_term_at_article", "article_terms",
                        ["term", "at", "article_id"])  # fmt: skip
        op.drop_constraint("pk_article_bands", "article_bands", type_="primary")
        op.create_index("ix_article_bands_band", "article_bands", ["band"])
        return
    _replace("article_terms", _terms(sa.DateTime(timezone=True)),
             f"SELECT term, {_MICROS_TO_TEXT}, article_id FROM article_terms")
    op.create_index("ix_article_terms_term_at_article", "article_terms",
                    ["term", "at", "article_id"])  # fmt: skip
    _replace("article_bands", _bands(), "SELECT band, article_id FROM article_bands")
    op.create_index("ix_article_bands_band", "article_bands", ["band"])


def _terms(at: sa.types.TypeEngine[Any]) -> list[sa.Column[Any]]:
    return [sa.Column("term", sa.String(200), nullable=False),
            sa.Column("at", at, nullable=False), sa.Column("article_id", ID, nullable=False)]


def _bands() -> list[sa.Column[Any]]:
    return [sa.Column("band", sa.String(64), nullable=False),
            sa.Column("article_id", ID, nullable=False)]  # fmt: skip


def _replace(table: str, columns: list[sa.Column[Any]], rows: str, *constraints: Any,
             **options: Any) -> None:  # fmt: skip
    """Replace ``table`` with a new table of ``columns`` (and ``constraints`` and table
    ``options``) holding ``rows``, a SELECT of the old one in the columns' order."""
    names = ", ".join(c.name for c in columns)
    op.create_table(f"new_{table}", *columns, *constraints, **options)
    op.execute(f"INSERT INTO new_{table} ({names}) {rows}")
    op.drop_table(table)
    op.rename_table(f"new_{table}", table)


def _dedupe(table: str, columns: str) -> None:
    """Drop repeated rows (none are written; a key cannot be made over them if any are)."""
    op.execute(
        f"DELETE FROM {table} t USING (SELECT {columns}, min(ctid) AS keep FROM {table} "
        f"GROUP BY {columns} HAVING count(*) > 1) d WHERE "
        + " AND ".join(f"t.{c} = d.{c}" for c in columns.split(", "))
        + " AND t.ctid <> d.keep"
    )
