"""The knowledge base: list and search, read (Markdown rendered without raw HTML), and write
(managers)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markdown_it import MarkdownIt
from markupsafe import Markup

from crm.errors import Forbidden, InvalidInput
from crm.knowledge import can_edit_articles, get_article, save_article, search_articles
from webapp.crm_pages.common import crm_user, field_errors, form_text, request_now, require_sign_in
from webapp.extensions import db

bp = Blueprint("crm_knowledge", __name__)
bp.before_request(require_sign_in)
# "html": False turns raw HTML in an article into text; links are checked by markdown-it's
# validateLink, which refuses javascript:, vbscript:, file: and most data: URLs.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def render_markdown(text: str) -> Markup:
    """Return an article body as safe HTML."""
    return Markup(_MARKDOWN.render(text or ""))  # noqa: S704 - markdown-it escapes all input HTML


@bp.get("/knowledge")
def index() -> Any:
    text = (request.args.get("q") or "").strip()[:200]
    return render_template(
        "crm/knowledge/list.html",
        articles=search_articles(db.session, text),
        q=text,
        can_edit=can_edit_articles(crm_user()),
    )


@bp.get("/knowledge/<int:article_id>")
def article(article_id: int) -> Any:
    found = get_article(db.session, article_id)
    return render_template(
        "crm/knowledge/article.html",
        article=found,
        body=render_markdown(found.body),
        can_edit=can_edit_articles(crm_user()),
    )


def _editor(article_id: int | None) -> Any:
    if not can_edit_articles(crm_user()):
        raise Forbidden(_("Only managers write knowledge-base articles."))
    found = get_article(db.session, article_id) if article_id else None
    if request.method == "GET":
        return render_template("crm/knowledge/edit.html", article=found, errors={}, values={})
    try:
        saved = save_article(
            db.session,
            crm_user(),
            form_text("title", 300),
            form_text("body", 200_000),
            form_text("tags", 300),
            now=request_now(),
            article_id=article_id,
        )
    except InvalidInput as exc:
        return render_template(
            "crm/knowledge/edit.html", article=found, errors=field_errors(exc), values=request.form
        ), 422
    flash(_("Article saved."))
    return redirect(url_for(".article", article_id=saved.id))


@bp.route("/knowledge/new", methods=["GET", "POST"])
def new() -> Any:
    return _editor(None)


@bp.route("/knowledge/<int:article_id>/edit", methods=["GET", "POST"])
def edit(article_id: int) -> Any:
    return _editor(article_id)
