"""Rule tests reuse the CRM factories."""

from __future__ import annotations

from tests.crm.conftest import make_customer, make_team, make_user  # noqa: F401
