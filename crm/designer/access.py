"""Who may use the designer: admins only, for every page and action."""

from __future__ import annotations

from crm.directory.models import User
from crm.errors import Forbidden

DESIGN_ROLES = frozenset({"admin"})


def may_design(user: User) -> bool:
    """Tell whether `user` may open, edit, deploy and roll back processes and forms."""
    return bool(user.active and user.roles & DESIGN_ROLES)


def require_designer(user: User) -> None:
    """Refuse anyone but an active admin.

    :raises Forbidden: for every other user.
    """
    if not may_design(user):
        raise Forbidden("only admins may edit, deploy or roll back processes and forms")
