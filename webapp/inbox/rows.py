"""The inbox table's rows as the strings the page shows, built once per page.

A page has fifty rows, and each names its task, process, holder and dates. Built in the template,
every row translated and formatted them again and built three URLs through the router. Here each
distinct title, process and role is translated once per page, dates come from a cache of
formatted days and times, and URLs are filled into a pattern built once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from babel import Locale
from babel.dates import format_date, format_time, get_datetime_format
from flask import url_for
from flask_babel import get_locale, get_timezone
from flask_babel import gettext as _

from crm.inbox.queries import InboxPage, InboxRow
from webapp.errors import translate

# Characters Werkzeug leaves unquoted in the query strings `url_for` builds.
_QUERY_SAFE = "!$'()*,/:;?@"
_SENTINEL_ID = 9_876_543_210


def id_url(endpoint: str) -> Callable[[int], str]:
    """Return a function giving the URL of `endpoint` for a `task_id`, built by the router once."""
    pattern = url_for(endpoint, task_id=_SENTINEL_ID)
    head, sentinel, tail = pattern.partition(str(_SENTINEL_ID))
    if not sentinel or str(_SENTINEL_ID) in tail:
        raise ValueError(f"cannot make a pattern of {endpoint}")
    return lambda task_id: f"{head}{task_id}{tail}"


def query_url(path: str, params: dict[str, Any]) -> str:
    """Return `path` with `params` as its query string, the way `url_for` writes it."""
    query = urlencode([(k, v) for k, v in params.items() if v is not None], safe=_QUERY_SAFE)
    return f"{path}?{query}" if query else path


@lru_cache(maxsize=4096)
def _short_date(locale: str, day: date) -> str:
    return format_date(day, "short", locale=locale)


@lru_cache(maxsize=8192)
def _short_time(locale: str, moment: time) -> str:
    return format_time(moment, "short", locale=locale)


@lru_cache(maxsize=64)
def _datetime_shape(locale: str) -> str:
    return str(get_datetime_format("short", locale=Locale.parse(locale))).replace("'", "")


class ShortDateTimes:
    """Format datetimes as `format_datetime(value, 'short')` does, for the request's locale.

    Babel builds the text from the date's and the time's own short forms; each of those depends
    on the day or the time of day alone, so they are remembered across requests.
    """

    def __init__(self) -> None:
        self.locale = str(get_locale() or "en")
        self.zone = get_timezone() or UTC
        self.shape = _datetime_shape(self.locale)

    def __call__(self, value: datetime) -> str:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(self.zone)
        normalize = getattr(self.zone, "normalize", None)  # pytz zones, as Babel does
        if normalize is not None:
            local = normalize(local)
        return self.shape.replace("{0}", _short_time(self.locale, local.timetz())).replace(
            "{1}", _short_date(self.locale, local.date())
        )


@dataclass(frozen=True, slots=True)
class RowView:
    """One task of the table with everything the row shows."""

    id: int
    css: str
    selectable_as: str | None  # the checkbox's label; None: no checkbox
    href: str
    title: str
    stage: str | None
    customer: str | None
    customer_href: str | None
    process: str
    holder: str
    holder_muted: bool
    due_iso: str | None
    due_text: str
    due_tag: str | None  # "overdue" or "today"
    when: str  # completed (on the completed tab) or created
    action: str | None  # "claim", "release" or "urge"
    action_url: str | None


class _TranslatedOnce:
    """Translate each distinct text once per page."""

    def __init__(self, translator: Callable[[str], str]) -> None:
        self.translator, self.known = translator, dict[str, str]()

    def __call__(self, text: str) -> str:
        found = self.known.get(text)
        if found is None:
            found = self.known[text] = self.translator(text)
        return found


def build_rows(page: InboxPage, *, me: str, inbox_path: str) -> list[RowView]:
    """Return the display rows of an inbox page for the signed-in user `me`."""
    query = page.query
    title_of = _TranslatedOnce(translate)
    process_of = _TranslatedOnce(translate)
    select_label = _TranslatedOnce(lambda title: _("Select “%(title)s”", title=title))
    role_label = _TranslatedOnce(lambda role: _("open to %(role)s", role=role))
    show_url, claim_url = id_url("tasks.show"), id_url("inbox.claim")
    release_url, urge_url = id_url("inbox.release"), id_url("inbox.urge")
    short = ShortDateTimes()
    # A replaced value keeps its key's place: the customer lands where `as_params` puts it.
    customer_params = query.as_params(customer="?", page=1)
    completed_tab = query.tab == "completed"
    people = page.people
    return [
        _row(
            row,
            me=me,
            title=title_of(row.task.title),
            process=process_of(page.processes.get(row.task.process_id) or row.task.process_id),
            select_label=select_label,
            role_label=role_label,
            urls=(show_url, claim_url, release_url, urge_url),
            short=short,
            customer_href=(
                query_url(inbox_path, {**customer_params, "customer": row.customer})
                if row.customer
                else None
            ),
            completed_tab=completed_tab,
            people=people,
        )
        for row in page.rows
    ]


def _row(
    row: InboxRow,
    *,
    me: str,
    title: str,
    process: str,
    select_label: Callable[[str], str],
    role_label: Callable[[str], str],
    urls: tuple[Callable[[int], str], ...],
    short: ShortDateTimes,
    customer_href: str | None,
    completed_tab: bool,
    people: dict[str, str],
) -> RowView:
    task = row.task
    show_url, claim_url, release_url, urge_url = urls
    is_open = task.status == "open"
    holder, muted = "", False
    if not is_open:
        holder = people.get(task.completed_by, task.completed_by) if task.completed_by else ""
    elif task.assignee:
        holder = people.get(task.assignee, task.assignee)
    elif task.candidate_role:
        holder, muted = role_label(task.candidate_role), True
    elif task.candidate_team:
        holder, muted = _("open to the team"), True
    action: str | None = None
    action_url: str | None = None
    if is_open and not task.assignee:
        action, action_url = "claim", claim_url(task.id)
    elif is_open and task.assignee == me and (task.candidate_role or task.candidate_team):
        action, action_url = "release", release_url(task.id)
    elif is_open and task.assignee != me:
        action, action_url = "urge", urge_url(task.id)
    when = task.completed_at if completed_tab else task.created_at
    properties = task.properties
    return RowView(
        id=task.id,
        css=" overdue" if row.overdue else " due-today" if row.due_today else "",
        selectable_as=select_label(title) if is_open else None,
        href=show_url(task.id),
        title=title,
        stage=(properties.get("stage") or None) if properties else None,
        customer=row.customer or None,
        customer_href=customer_href,
        process=process,
        holder=holder,
        holder_muted=muted,
        due_iso=task.due_at.isoformat() if task.due_at else None,
        due_text=short(task.due_at) if task.due_at else "",
        due_tag="overdue" if row.overdue else "today" if row.due_today else None,
        when=short(when) if when else "",
        action=action,
        action_url=action_url,
    )
