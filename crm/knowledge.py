"""The knowledge base: articles everyone reads and searches, that managers write."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm.activities.models import Article
from crm.directory.models import User
from crm.errors import Forbidden, NotFound, fields_error, msg

EDITOR_ROLES = frozenset({"manager", "supervisor", "director", "admin"})
MAX_BODY = 100_000


def can_edit_articles(user: User) -> bool:
    return bool(user.roles & EDITOR_ROLES)


def search_articles(session: Session, text: str = "", *, limit: int = 200) -> list[Article]:
    """Return articles whose title, tags or body contain every word of `text`, newest first."""
    stmt = select(Article).order_by(Article.updated_at.desc(), Article.id.desc()).limit(limit)
    for word in text.split()[:10]:
        stmt = stmt.where(
            or_(
                Article.title.icontains(word, autoescape=True),
                Article.tags.icontains(word, autoescape=True),
                Article.body.icontains(word, autoescape=True),
            )
        )
    return list(session.scalars(stmt))


def get_article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(msg("article %(id)s does not exist", id=article_id))
    return article


def save_article(
    session: Session,
    user: User,
    title: str,
    body: str,
    tags: str | None,
    *,
    now: datetime,
    article_id: int | None = None,
) -> Article:
    """Write a new article, or revise one (managers, supervisors, directors and admins)."""
    if not can_edit_articles(user):
        raise Forbidden("only managers write knowledge-base articles")
    title, body = (title or "").strip(), (body or "").strip()
    tags = ",".join(t.strip() for t in (tags or "").split(",") if t.strip()) or None
    problems = {}
    if not title:
        problems["title"] = "is required"
    elif len(title) > 200:
        problems["title"] = "is longer than 200 characters"
    if not body:
        problems["body"] = "is required"
    elif len(body) > MAX_BODY:
        problems["body"] = msg("is longer than %(MAX_BODY)s characters", MAX_BODY=MAX_BODY)
    if tags is not None and len(tags) > 255:
        problems["tags"] = "are longer than 255 characters"
    if problems:
        raise fields_error(**problems)
    if article_id is None:
        article = Article(author_id=user.id, created_at=now, title=title, body=body)
        session.add(article)
    else:
        article = get_article(session, article_id)
    article.title, article.body, article.tags, article.updated_at = title, body, tags, now
    session.flush()
    return article
