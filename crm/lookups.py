"""Names for ids, for lists that show whose record it is and for which customer."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User


def customer_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(wanted)))
    return {cid: name for cid, name in rows}


def user_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}
