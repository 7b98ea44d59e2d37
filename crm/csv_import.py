"""CSV import of customers and of leads into a pool: all rows or none.

Every row is checked first and every problem reported with its row number (the header is row
1) and field. Only a file without problems is imported, in one go. Names whose comparable form
(`name_key`) matches an existing customer or another row are reported as duplicates; they block
the import unless the user accepts them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import TIERS, Customer, Pool
from crm.customers.services import create_customer, name_key
from crm.directory.models import Territory, User
from crm.directory.services import visible_owner_ids
from crm.errors import Forbidden, InvalidInput, fields_error, msg
from crm.leads.models import Campaign
from crm.leads.services import create_lead

MAX_IMPORT_BYTES = 1_000_000
MAX_IMPORT_ROWS = 5_000
LEAD_IMPORT_ROLES = frozenset({"marketing", "manager", "supervisor", "director", "admin"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Column names people use, English and Chinese, for each field.
CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "customer", "company", "名称", "客户", "客户名称", "公司"),
    "tier": ("tier", "等级", "级别"),
    "industry": ("industry", "行业"),
    "phone": ("phone", "telephone", "电话"),
    "email": ("email", "e-mail", "邮箱"),
    "territory": ("territory", "区域"),
    "owner": ("owner", "负责人"),
}
LEAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "contact", "姓名", "名称"),
    "company": ("company", "公司"),
    "phone": ("phone", "telephone", "电话"),
    "email": ("email", "e-mail", "邮箱"),
    "source": ("source", "来源"),
    "campaign": ("campaign", "活动"),
}
_LIMITS = {"name": 200, "industry": 80, "phone": 40, "email": 255, "company": 200, "source": 40}


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    message: str


@dataclass
class ImportCheck:
    """The outcome of checking a file: clean rows, problems, duplicates."""

    kind: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowProblem] = field(default_factory=list)
    allow_duplicates: bool = False

    @property
    def blocking(self) -> list[RowProblem]:
        found = self.problems + ([] if self.allow_duplicates else self.duplicates)
        return sorted(found, key=lambda p: (p.row, p.field))

    @property
    def ok(self) -> bool:
        return not self.blocking and bool(self.rows)


class ImportRejected(InvalidInput):
    """The file has problems; nothing was imported. `check` lists them."""

    def __init__(self, check: ImportCheck) -> None:
        fields: dict[str, list[str]] = {}
        for p in check.blocking:
            fields.setdefault(f"row {p.row}: {p.field}", []).append(p.message)
        if not check.rows and not fields:
            fields["file"] = ["has no data rows"]
        super().__init__(f"{len(fields)} problem(s) found; nothing was imported", fields)
        self.check = check


def decode_upload(raw: bytes) -> str:
    """Return an uploaded CSV file's text (UTF-8, with or without BOM, or GB18030 from Excel)."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise fields_error(file=msg("is larger than %(value)s kB", value=MAX_IMPORT_BYTES // 1000))
    if not raw.strip():
        raise fields_error(file="is empty")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise fields_error(file="is not UTF-8 text")


def _dialect(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=first.count)


def _read(
    text: str, columns: dict[str, tuple[str, ...]], check: ImportCheck
) -> list[tuple[int, dict[str, str]]]:
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(text))
    header = next(reader, None)
    if not header:
        check.problems.append(RowProblem(1, "file", "has no header row"))
        return []
    known = {alias.casefold(): name for name, aliases in columns.items() for alias in aliases}
    mapped: list[str | None] = []
    for cell in header:
        name = known.get(cell.strip().casefold())
        if cell.strip() and name is None:
            expected = ", ".join(columns)
            check.problems.append(RowProblem(1, cell.strip(), f"unknown column; use {expected}"))
        elif name in mapped:
            check.problems.append(RowProblem(1, cell.strip(), "appears twice"))
            name = None
        mapped.append(name)
    check.columns = [name for name in columns if name in mapped]
    if "name" not in mapped:
        check.problems.append(RowProblem(1, "name", "column is missing"))
    rows: list[tuple[int, dict[str, str]]] = []
    for number, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            check.problems.append(
                RowProblem(number, "file", f"more than {MAX_IMPORT_ROWS} rows; split the file")
            )
            break
        if len(record) > len(mapped):
            check.problems.append(RowProblem(number, "row", "has more cells than the header"))
        values = {name: "" for name in check.columns}
        for name, cell in zip(mapped, record, strict=False):
            if name is not None:
                values[name] = cell.strip()
        rows.append((number, values))
    return rows


def _common_checks(number: int, values: dict[str, str], check: ImportCheck) -> None:
    if not values.get("name"):
        check.problems.append(RowProblem(number, "name", "is required"))
    for name, limit in _LIMITS.items():
        if len(values.get(name) or "") > limit:
            check.problems.append(RowProblem(number, name, f"is longer than {limit} characters"))
    email = values.get("email")
    if email and not _EMAIL.match(email):
        check.problems.append(RowProblem(number, "email", f"'{email}' is not an e-mail address"))


def _find_duplicates(
    session: Session, keyed: list[tuple[int, str, str]], check: ImportCheck
) -> None:
    """Report rows whose name key matches an existing customer or an earlier row."""
    keys = sorted({key for _, key, _ in keyed if key})
    existing: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), 500):
        for cid, key, name in session.execute(
            select(Customer.id, Customer.name_key, Customer.name).where(
                Customer.name_key.in_(keys[start : start + 500])
            )
        ):
            existing.setdefault(key, (cid, name))
    first_row: dict[str, int] = {}
    for number, key, field_name in keyed:
        if not key:
            continue
        if key in existing:
            cid, name = existing[key]
            check.duplicates.append(
                RowProblem(number, field_name, f"duplicate of existing customer {name} (#{cid})")
            )
        elif key in first_row:
            check.duplicates.append(
                RowProblem(number, field_name, f"duplicate of row {first_row[key]}")
            )
        else:
            first_row[key] = number


def _pool(session: Session, pool_id: int | None, kind: str) -> Pool | None:
    if pool_id is None:
        return None
    pool = session.get(Pool, pool_id)
    if pool is None or pool.kind != kind:
        raise fields_error(pool=msg("is not a %(kind)s pool", kind=kind))
    return pool


def check_customer_import(
    session: Session,
    user: User,
    text: str,
    *,
    pool_id: int | None = None,
    allow_duplicates: bool = False,
) -> ImportCheck:
    """Check a customer file without importing anything."""
    _pool(session, pool_id, "customer")
    check = ImportCheck("customers", allow_duplicates=allow_duplicates)
    rows = _read(text, CUSTOMER_COLUMNS, check)
    territories = {
        code.casefold(): tid for tid, code in session.execute(select(Territory.id, Territory.code))
    }
    usernames = {v["owner"] for _, v in rows if v.get("owner")}
    owners = {
        u.username: u for u in session.scalars(select(User).where(User.username.in_(usernames)))
    }
    scope = visible_owner_ids(session, user)
    keyed = []
    for number, values in rows:
        _common_checks(number, values, check)
        tier = (values.get("tier") or "C").upper()
        if tier not in TIERS:
            check.problems.append(RowProblem(number, "tier", f"must be one of {', '.join(TIERS)}"))
        territory = values.get("territory") or ""
        if territory and territory.casefold() not in territories:
            check.problems.append(RowProblem(number, "territory", f"no territory '{territory}'"))
        owner = owners.get(values.get("owner") or "")
        if values.get("owner") and (owner is None or not owner.active):
            check.problems.append(RowProblem(number, "owner", f"no user '{values['owner']}'"))
        elif owner is not None and scope is not None and owner.id not in scope:
            check.problems.append(
                RowProblem(number, "owner", f"'{owner.username}' is not in your team")
            )
        keyed.append((number, name_key(values.get("name") or ""), "name"))
        check.rows.append(
            {
                **values,
                "row": number,
                "tier": tier,
                "territory_id": territories.get(territory.casefold()),
                "owner_id": owner.id if owner else None,
            }
        )
    _find_duplicates(session, keyed, check)
    return check


def import_customers(
    session: Session,
    user: User,
    text: str,
    *,
    now: datetime,
    pool_id: int | None = None,
    allow_duplicates: bool = False,
) -> int:
    """Import every customer of the file, or none if any row has a problem."""
    check = check_customer_import(
        session, user, text, pool_id=pool_id, allow_duplicates=allow_duplicates
    )
    if not check.ok:
        raise ImportRejected(check)
    for row in check.rows:
        owner = session.get(User, row["owner_id"]) if row["owner_id"] else None
        if owner is None and pool_id is None:
            owner = user
        create_customer(
            session,
            user,
            row["name"],
            now=now,
            tier=row["tier"],
            owner=owner,
            pool_id=pool_id,
            territory_id=row["territory_id"],
            industry=row.get("industry") or None,
            phone=row.get("phone") or None,
            email=row.get("email") or None,
            source="import",
            confirm_duplicate=True,
        )
    return len(check.rows)


def check_lead_import(
    session: Session,
    user: User,
    text: str,
    *,
    pool_id: int | None,
    allow_duplicates: bool = False,
) -> ImportCheck:
    """Check a lead file for a lead pool without importing anything."""
    if not user.roles & LEAD_IMPORT_ROLES:
        raise Forbidden("only marketing and managers import leads")
    if pool_id is None:
        raise fields_error(pool="choose the lead pool to import into")
    _pool(session, pool_id, "lead")
    check = ImportCheck("leads", allow_duplicates=allow_duplicates)
    rows = _read(text, LEAD_COLUMNS, check)
    campaigns = {
        name.casefold(): cid for cid, name in session.execute(select(Campaign.id, Campaign.name))
    }
    keyed = []
    for number, values in rows:
        _common_checks(number, values, check)
        campaign = values.get("campaign") or ""
        if campaign and campaign.casefold() not in campaigns:
            check.problems.append(RowProblem(number, "campaign", f"no campaign '{campaign}'"))
        company = values.get("company") or ""
        keyed.append(
            (
                number,
                name_key(company or values.get("name") or ""),
                "company" if company else "name",
            )
        )
        check.rows.append(
            {**values, "row": number, "campaign_id": campaigns.get(campaign.casefold())}
        )
    _find_duplicates(session, keyed, check)
    return check


def import_leads(
    session: Session,
    user: User,
    text: str,
    *,
    now: datetime,
    pool_id: int | None,
    allow_duplicates: bool = False,
) -> int:
    """Import every lead of the file into the pool, or none if any row has a problem."""
    check = check_lead_import(
        session, user, text, pool_id=pool_id, allow_duplicates=allow_duplicates
    )
    if not check.ok:
        raise ImportRejected(check)
    for row in check.rows:
        create_lead(
            session,
            user,
            row["name"],
            now=now,
            company=row.get("company") or None,
            phone=row.get("phone") or None,
            email=row.get("email") or None,
            source=row.get("source") or "import",
            campaign_id=row["campaign_id"],
            pool_id=pool_id,
        )
    return len(check.rows)


def pools_of_kind(session: Session, kind: str) -> list[Pool]:
    return list(session.scalars(select(Pool).where(Pool.kind == kind).order_by(Pool.name)))


CHECKS: dict[str, Callable[..., ImportCheck]] = {
    "customers": check_customer_import,
    "leads": check_lead_import,
}
IMPORTS: dict[str, Callable[..., int]] = {"customers": import_customers, "leads": import_leads}
