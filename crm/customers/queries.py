"""Finding customers: a multi-criteria search inside the user's data scope, sorted and paged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from math import ceil
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from crm.customers.models import TIERS, Customer
from crm.customers.services import name_key
from crm.directory.models import Territory, User
from crm.directory.services import visible_owner_ids
from crm.errors import fields_error, msg
from crm.sales.models import Opportunity

SORTS = ("name", "tier", "last_activity", "created")
PER_PAGE = 25
MAX_EXPORT_ROWS = 20_000
POOL = "pool"  # the owner filter's value for customers waiting in a pool
Params = Mapping[str, Sequence[str] | str | None]


@dataclass(frozen=True)
class CustomerQuery:
    """The criteria of the customer list; `as_params` is its URL and saved-filter form."""

    name: str = ""
    tiers: tuple[str, ...] = ()
    industry: str = ""
    territory_id: int | None = None
    owner: str = ""  # "", POOL, or a user id
    activity_before: date | None = None
    activity_after: date | None = None
    open_deal: str = ""  # "", "yes" or "no"
    sort: str = "name"
    descending: bool = False

    def as_params(self) -> dict[str, list[str]]:
        params: dict[str, list[str]] = {
            "name": [self.name],
            "tier": list(self.tiers),
            "industry": [self.industry],
            "territory": [str(self.territory_id or "")],
            "owner": [self.owner],
            "activity_before": [self.activity_before.isoformat() if self.activity_before else ""],
            "activity_after": [self.activity_after.isoformat() if self.activity_after else ""],
            "open_deal": [self.open_deal],
            "sort": [self.sort if self.sort != "name" else ""],
            "order": ["desc" if self.descending else ""],
        }
        return {key: values for key, values in params.items() if any(values)}


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    owner_name: str | None
    territory_name: str | None
    has_open_deal: bool


@dataclass(frozen=True)
class CustomerPage:
    rows: list[CustomerRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))


def _first(params: Params, key: str) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        value = value[0] if value else ""
    return value.strip()


def _all(params: Params, key: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [v.strip() for v in values if v and v.strip()]


def _date(text: str, field: str, problems: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems[field] = msg("'%(text)s' is not a date (YYYY-MM-DD)", text=text)
        return None


def parse_customer_query(params: Params) -> CustomerQuery:
    """Read the list's criteria from URL parameters, naming every bad one."""
    problems: dict[str, str] = {}
    tiers = tuple(sorted({t.upper() for t in _all(params, "tier")}))
    if any(t not in TIERS for t in tiers):
        problems["tier"] = msg("must be among %(items)s", items=", ".join(TIERS))
    territory = _first(params, "territory")
    if territory and not territory.isdigit():
        problems["territory"] = "is not a territory"
    owner = _first(params, "owner")
    if owner and owner != POOL and not owner.isdigit():
        problems["owner"] = "is not a user"
    open_deal = _first(params, "open_deal")
    if open_deal not in ("", "yes", "no"):
        problems["open_deal"] = "must be yes or no"
    sort = _first(params, "sort") or "name"
    if sort not in SORTS:
        problems["sort"] = msg("must be one of %(items)s", items=", ".join(SORTS))
    before = _date(_first(params, "activity_before"), "activity_before", problems)
    after = _date(_first(params, "activity_after"), "activity_after", problems)
    if problems:
        raise fields_error(**problems)
    return CustomerQuery(
        name=_first(params, "name")[:200],
        tiers=tiers,
        industry=_first(params, "industry")[:80],
        territory_id=int(territory) if territory else None,
        owner=owner,
        activity_before=before,
        activity_after=after,
        open_deal=open_deal,
        sort=sort,
        descending=_first(params, "order") == "desc",
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _open_deal() -> Any:
    return (
        select(Opportunity.id)
        .where(Opportunity.customer_id == Customer.id, Opportunity.status == "open")
        .exists()
    )


def _owner_conditions(
    session: Session, user: User, query: CustomerQuery
) -> list[ColumnElement[bool]]:
    scope = visible_owner_ids(session, user)
    if query.owner == POOL:
        return [Customer.owner_id.is_(None)]
    conditions: list[ColumnElement[bool]] = []
    if scope is not None:
        conditions.append(Customer.owner_id.in_(scope))
    if query.owner.isdigit():
        conditions.append(Customer.owner_id == int(query.owner))
    return conditions


def _conditions(session: Session, user: User, query: CustomerQuery) -> list[ColumnElement[bool]]:
    conditions = _owner_conditions(session, user, query)
    if query.name:
        key = name_key(query.name)
        matches = [Customer.name.icontains(query.name, autoescape=True)]
        if key:
            matches.append(Customer.name_key.contains(key, autoescape=True))
        conditions.append(or_(*matches))
    if query.tiers:
        conditions.append(Customer.tier.in_(query.tiers))
    if query.industry:
        conditions.append(func.lower(Customer.industry) == query.industry.lower())
    if query.territory_id is not None:
        conditions.append(Customer.territory_id == query.territory_id)
    if query.activity_before is not None:
        # Never contacted counts as "no activity since".
        conditions.append(
            or_(
                Customer.last_activity_at.is_(None),
                Customer.last_activity_at < _start_of(query.activity_before),
            )
        )
    if query.activity_after is not None:
        conditions.append(Customer.last_activity_at >= _start_of(query.activity_after))
    if query.open_deal == "yes":
        conditions.append(_open_deal())
    elif query.open_deal == "no":
        conditions.append(~_open_deal())
    return conditions


def _ordering(query: CustomerQuery) -> list[Any]:
    column: Any = {
        "name": Customer.name_key,
        "tier": Customer.tier,
        "last_activity": Customer.last_activity_at,
        "created": Customer.created_at,
    }[query.sort]
    direction = column.desc() if query.descending else column.asc()
    # Customers never contacted go last whichever way the list is sorted.
    nulls_last = [Customer.last_activity_at.is_(None)] if query.sort == "last_activity" else []
    tiebreak = Customer.id.desc() if query.descending else Customer.id.asc()
    return [*nulls_last, direction, tiebreak]


def _rows(session: Session, user: User, query: CustomerQuery) -> Any:
    return (
        select(Customer, User.display_name, Territory.name, _open_deal().label("open_deal"))
        .outerjoin(User, User.id == Customer.owner_id)
        .outerjoin(Territory, Territory.id == Customer.territory_id)
        .where(*_conditions(session, user, query))
        .order_by(*_ordering(query))
    )


def search_customers(
    session: Session, user: User, query: CustomerQuery, *, page: int = 1, per_page: int = PER_PAGE
) -> CustomerPage:
    """Return one page of the customers the user may see that match the query."""
    total = (
        session.scalar(
            select(func.count()).select_from(Customer).where(*_conditions(session, user, query))
        )
        or 0
    )
    page = max(1, min(page, max(1, ceil(total / per_page))))
    result = session.execute(
        _rows(session, user, query).limit(per_page).offset((page - 1) * per_page)
    )
    rows = [CustomerRow(c, owner, territory, bool(deal)) for c, owner, territory, deal in result]
    return CustomerPage(rows, total, page, per_page)


def export_customers(session: Session, user: User, query: CustomerQuery) -> list[CustomerRow]:
    """Return every customer of the filtered list (up to the export limit), in list order."""
    result = session.execute(_rows(session, user, query).limit(MAX_EXPORT_ROWS))
    return [CustomerRow(c, owner, territory, bool(deal)) for c, owner, territory, deal in result]


def owner_choices(session: Session, user: User) -> list[User]:
    """Return the people whose customers the user may filter by."""
    scope = visible_owner_ids(session, user)
    stmt = select(User).where(User.active.is_(True)).order_by(User.display_name, User.id)
    if scope is not None:
        stmt = stmt.where(User.id.in_(scope))
    return list(session.scalars(stmt))


def industry_choices(session: Session) -> list[str]:
    """Return the industries customers are filed under."""
    found = session.scalars(
        select(Customer.industry).where(Customer.industry.is_not(None)).distinct()
    )
    return sorted(i for i in found if i)


def territory_choices(session: Session) -> list[Territory]:
    return list(session.scalars(select(Territory).order_by(Territory.name)))
