"""Data scopes: reps see their own records, managers their team subtree, directors all."""

from __future__ import annotations

import pytest

from crm.customers.services import get_customer
from crm.directory.services import director_over, manager_of, visible_owner_ids
from crm.errors import NotFound
from crm.quotes.services import create_quote, get_quote
from crm.sales.services import get_opportunity
from tests.conftest import NOW

LINE = [{"description": "CRM licence", "quantity": 10, "unit_price": "1000"}]


def test_scopes_rep_cannot_read_another_reps_customer_deal_or_quote(
    session, sales_org, make_opportunity
):
    rita, rob = sales_org["north"]["reps"]
    deal = make_opportunity(rob)
    quote = create_quote(session, rob, deal.id, LINE, now=NOW)
    for read, record_id in (
        (get_customer, deal.customer_id),
        (get_opportunity, deal.id),
        (get_quote, quote.id),
    ):
        with pytest.raises(NotFound):
            read(session, rita, record_id)
        assert read(session, rob, record_id).id == record_id
    with pytest.raises(NotFound):
        create_quote(session, rita, deal.id, LINE, now=NOW)


def test_scopes_manager_sees_own_team_only(session, sales_org, make_opportunity):
    north_deal = make_opportunity(sales_org["north"]["reps"][0])
    south_deal = make_opportunity(sales_org["south"]["reps"][0])
    manager = sales_org["north"]["manager"]
    assert get_opportunity(session, manager, north_deal.id).id == north_deal.id
    with pytest.raises(NotFound):
        get_opportunity(session, manager, south_deal.id)


def test_scopes_director_and_finance(session, sales_org, make_opportunity):
    deal = make_opportunity(sales_org["south"]["reps"][1])
    assert get_opportunity(session, sales_org["director"], deal.id).id == deal.id
    assert visible_owner_ids(session, sales_org["director"]) is None
    finance = sales_org["finance"]
    assert visible_owner_ids(session, finance, money=True) is None
    with pytest.raises(NotFound):
        get_opportunity(session, finance, deal.id)


def test_scopes_manager_covers_sub_teams(
    session, sales_org, make_team, make_user, make_opportunity
):
    north = sales_org["north"]
    squad = make_team("North squad", parent=north["team"])
    newcomer = make_user("rep", team=squad)
    deal = make_opportunity(newcomer)
    assert get_opportunity(session, north["manager"], deal.id).id == deal.id
    assert get_opportunity(session, sales_org["director"], deal.id).id == deal.id


def test_directory_manager_and_director_chain(session, sales_org):
    rep = sales_org["north"]["reps"][0]
    assert manager_of(session, rep).username == "north_manager"
    assert manager_of(session, sales_org["north"]["manager"]).username == "dora"
    assert director_over(session, rep).username == "dora"
