"""``SQLRepository``'s stories as users see and correct them: a story with its sources,
``monitor story merge`` and ``monitor story split``, and the chain of merges a stored
decision follows."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, cast, func, insert, select, update

from monitor.errors import StorageError
from monitor.types import Article, Fingerprint, LoneStory

from . import models as m
from ._engine import retry_transactions

SPLIT_BY_HAND = "split by hand from story"  # the reason of an article a hand split moved


@retry_transactions()
class StoryStore:
    """The stories part of ``SQLRepository`` (its contract holds here)."""

    _tx: Callable[[], AbstractContextManager[Connection]]
    transaction: Callable[[], AbstractContextManager[None]]

    def get_story(self, story_id: int) -> dict[str, Any] | None:
        """A story with ``alerted`` (any outbox row) and its sources."""
        with self._tx() as conn:
            story_id = follow_merges(conn, story_id)
            row = conn.execute(select(m.stories).where(m.stories.c.id == story_id)).first()
            if row is None:
                return None
            alerted = conn.execute(select(func.count()).select_from(m.outbox)
                                   .where(m.outbox.c.story_id == story_id)).scalar_one()
            srcs = conn.execute(select(m.articles.c.source).where(
                m.articles.c.story_id == story_id).distinct()).scalars().all()  # fmt: skip
        return {**dict(row._mapping), "alerted": alerted > 0, "sources": sorted(srcs)}

    def merge_stories(self, keep: int, other: int, *, automatic: bool = False) -> int:
        """Merge story ``other`` into ``keep``; later articles follow. Returns articles moved.

        ``automatic`` marks dedupe healing a fragment (``Decision.merge_story_ids``): it
        moves nothing when the two are one story already, nor when either holds an
        article split out by hand, so a correction is kept.
        """
        with self._tx() as conn:
            keep, other = follow_merges(conn, keep), follow_merges(conn, other)
            if automatic and (keep == other or _split_by_hand(conn, keep, other)):
                return 0
            found = conn.execute(select(func.count()).select_from(m.stories)
                                 .where(m.stories.c.id.in_([keep, other]))).scalar_one()
            if found != 2 or keep == other:
                raise StorageError(f"cannot merge story {other} into {keep}: "
                                   "both must exist and differ")  # fmt: skip
            moved = conn.execute(update(m.articles).where(m.articles.c.story_id == other)
                                 .values(story_id=keep)).rowcount  # fmt: skip
            conn.execute(update(m.outbox).where(m.outbox.c.story_id == other)
                         .values(story_id=keep))  # fmt: skip
            st = m.stories.c
            conn.execute(update(m.stories).where(st.id == other)
                         .values(merged_into=keep, articles=0))  # fmt: skip
            conn.execute(update(m.stories).where(st.id == keep)
                         .values(articles=st.articles + moved))  # fmt: skip
        return int(moved)

    def lone_stories(self, after: int, created_before: datetime,
                     limit: int) -> tuple[list[LoneStory], int]:  # fmt: skip
        """Stories of one article, created at or before ``created_before``, among the
        ``limit`` stories of ids above ``after``, by id; and the last id looked at, up to
        the first story created later (stories are created about in id order, so a scan
        resumes from there)."""
        st, a = m.stories.c, m.articles.c
        with self._tx() as conn:
            rows = conn.execute(select(st.id, st.created_at, st.articles, st.merged_into)
                                .where(st.id > after).order_by(st.id).limit(limit)).all()
            last, lone = after, []
            for row in rows:
                if row.created_at > created_before:
                    break
                last = row.id
                if row.articles == 1 and row.merged_into is None:
                    lone.append(row.id)
            cols = (a.id, a.story_id, a.source, a.title, a.url, a.link, a.guid, a.published,
                    a.fetched, a.fingerprint)  # fmt: skip
            found = [] if not lone else conn.execute(
                select(*cols).where(a.story_id.in_(lone)).order_by(a.story_id)).all()
        return [_lone(row) for row in found], last

    def settle_story(self, lone: LoneStory, into: int, reason: str) -> bool:
        """Merge the ``lone`` story into ``into`` as dedupe's healing does (never where a
        hand split was made), adding ``reason`` to its article's on a line of its own;
        whether it was merged."""
        with self.transaction():
            if not self.merge_stories(into, lone.story_id, automatic=True):
                return False
            a = m.articles.c
            with self._tx() as conn:
                conn.execute(update(m.articles).where(a.id == lone.article_id)
                             .values(reason=a.reason + "\n" + reason))  # fmt: skip
        return True

    def split_article(self, article_id: int, now: datetime) -> int:
        """Move one article into a story of its own; later re-reports of it follow it."""
        with self._tx() as conn:
            art = conn.execute(select(m.articles).where(m.articles.c.id == article_id)).first()
            if art is None:
                raise StorageError(f"no article {article_id}")
            st = m.stories.c
            new_id = conn.execute(insert(m.stories).values(
                title=art.title, first_at=art.at, last_at=art.at, articles=1,
                related_story_id=art.story_id, created_at=now,
            ).returning(st.id)).scalar_one()  # fmt: skip
            conn.execute(update(m.articles).where(m.articles.c.id == article_id).values(
                story_id=new_id, decision="new", level=0,
                reason=f"{SPLIT_BY_HAND} {art.story_id}"))  # fmt: skip
            conn.execute(update(m.stories).where(st.id == art.story_id)
                         .values(articles=st.articles - 1))  # fmt: skip
        return int(new_id)


def _lone(row: Any) -> LoneStory:
    raw = row.fingerprint
    fp = Fingerprint(keys=tuple(raw.get("keys", ())), bands=tuple(raw.get("bands", ())),
                     terms=tuple(raw.get("terms", ())), data=raw.get("data", {}),
                     version=raw.get("version", 1))  # fmt: skip
    article = Article(source=row.source, title=row.title, body="", url=row.url, link=row.link,
                      guid=row.guid, published=row.published, fetched=row.fetched)  # fmt: skip
    return LoneStory(row.story_id, row.id, article, fp)


def _split_by_hand(conn: Connection, *story_ids: int) -> bool:
    """Whether one of the stories holds an article a hand split moved (its reason says)."""
    a = m.articles.c
    q = select(a.id).where(a.story_id.in_(story_ids), a.reason.startswith(SPLIT_BY_HAND))
    return conn.execute(q.limit(1)).first() is not None


_MERGED_INTO = select(m.stories.c.merged_into).where(m.stories.c.id == bindparam("b_story"))


def story_open(conn: Connection, story_id: int) -> bool:
    """Whether ``story_id`` is stored and not merged into another story."""
    row = conn.execute(_MERGED_INTO, {"b_story": story_id}).first()
    return row is not None and row.merged_into is None


def follow_merges(conn: Connection, story_id: int) -> int:
    for _ in range(100):
        nxt = conn.execute(_MERGED_INTO, {"b_story": story_id}).scalar()
        if nxt is None:
            return story_id
        story_id = nxt
    return story_id


def story_and_article(story: Any) -> Any:
    """PostgreSQL: ``story`` (an INSERT or UPDATE of ``stories`` returning its id) and the
    article's INSERT as one statement, one round trip: the article's values are bound as
    ``a_`` and the column name (every ``articles`` column but ``id`` and ``story_id``,
    which comes from ``story``; an UPDATE would set the story's columns of the same names).
    Its row holds the new article's id and story id; none when the article conflicts
    with a stored one (``ON CONFLICT DO NOTHING``) or when ``story`` wrote no row (the
    story to join was merged since the article's candidates were read)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    a = m.articles.c
    cols = [c for c in m.articles.columns if c.name not in ("id", "story_id")]
    found = story.cte("story")
    values = select(*(cast(bindparam(f"a_{c.name}", type_=c.type), c.type) for c in cols),
                    found.c.id)  # fmt: skip
    return (pg_insert(m.articles).from_select([*(c.name for c in cols), "story_id"], values)
            .on_conflict_do_nothing().returning(a.id, a.story_id))  # fmt: skip


def join_story(conn: Connection, join: Any, story_id: int, when: datetime) -> int:
    """Count an article into ``story_id``, or into the story it was merged into since the
    article's candidates were read; returns the story joined. ``join`` is the UPDATE
    (``b_story``, ``b_when``), which leaves a merged story alone."""
    if conn.execute(join, {"b_story": story_id, "b_when": when}).rowcount != 1:
        story_id = follow_merges(conn, story_id)
        conn.execute(join, {"b_story": story_id, "b_when": when})
    return story_id
