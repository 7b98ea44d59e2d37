"""CSV export that spreadsheets cannot turn into formulas, and all-or-nothing CSV import."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.csv_export import safe_cell, to_csv
from crm.csv_import import (
    MAX_IMPORT_BYTES,
    ImportRejected,
    RowProblem,
    check_customer_import,
    check_lead_import,
    decode_upload,
    import_customers,
    import_leads,
)
from crm.customers.models import Customer, OwnerChange
from crm.customers.services import create_pool
from crm.errors import Forbidden, InvalidInput
from crm.leads.models import Campaign, Lead
from tests.conftest import NOW


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+86 21 5555", "'+86 21 5555"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (Decimal("-5.00"), "-5.00"),
        (None, ""),
        (True, "yes"),
    ],
)
def test_export_cells_never_start_a_formula(value, cell):
    assert safe_cell(value) == cell


def test_export_has_a_bom_crlf_and_proper_quoting():
    text = to_csv(["Name", "Note"], [['Comma, "quoted"', "line\nbreak"], ["=cmd|' /C calc'!A0", 1]])
    assert text.startswith("\ufeffName,Note\r\n")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert rows[1] == ['Comma, "quoted"', "line\nbreak"]
    assert rows[2] == ["'=cmd|' /C calc'!A0", "1"]


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_customer_import_with_one_bad_row_imports_nothing(session, sales_org):
    rep = sales_org["north"]["reps"][0]
    text = (
        "name,tier,email,territory\nAlpha,A,a@example.com,E\nBeta,Q,not-mail,E\nGamma,B,,NOWHERE\n"
    )
    check = check_customer_import(session, rep, text)
    assert check.blocking == [
        RowProblem(3, "email", "'not-mail' is not an e-mail address"),
        RowProblem(3, "tier", "must be one of A, B, C, D, E"),
        RowProblem(4, "territory", "no territory 'NOWHERE'"),
    ]
    before = _count(session, Customer)
    with pytest.raises(ImportRejected) as caught:
        import_customers(session, rep, text, now=NOW)
    assert "row 3: tier" in caught.value.fields
    assert _count(session, Customer) == before


def test_customer_import_creates_every_row_with_owner_history(session, sales_org):
    rep = sales_org["north"]["reps"][0]
    text = "\ufeffName,Tier,Industry,Territory\nAlpha,a,retail,e\nBeta,,,\n"
    assert import_customers(session, rep, text, now=NOW) == 2
    alpha = session.scalar(select(Customer).where(Customer.name == "Alpha"))
    assert (alpha.tier, alpha.owner_id, alpha.source) == ("A", rep.id, "import")
    assert alpha.territory_id == sales_org["territory"].id
    assert session.scalar(select(OwnerChange.reason).where(OwnerChange.customer_id == alpha.id))
    beta = session.scalar(select(Customer).where(Customer.name == "Beta"))
    assert beta.tier == "C"


def test_customer_import_reports_duplicates_unless_accepted(session, sales_org, make_customer):
    rep = sales_org["north"]["reps"][0]
    make_customer(rep, "Acme Trading Ltd")
    text = "name\nACME Trading Co.\nNova\nnova\n"
    check = check_customer_import(session, rep, text)
    assert [(p.row, p.field) for p in check.blocking] == [(2, "name"), (4, "name")]
    assert "duplicate of existing customer Acme Trading Ltd" in check.blocking[0].message
    assert check.blocking[1].message == "duplicate of row 3"
    accepted = check_customer_import(session, rep, text, allow_duplicates=True)
    assert accepted.ok
    assert len(accepted.duplicates) == 2


def test_customer_import_owner_must_be_in_the_importers_team(session, sales_org):
    north = sales_org["north"]
    text = (
        "name,owner\n"
        f"One,{north['reps'][1].username}\n"
        f"Two,{sales_org['south']['reps'][0].username}\n"
        "Three,nobody\n"
    )
    manager_check = check_customer_import(session, north["manager"], text)
    assert [(p.row, p.field) for p in manager_check.blocking] == [(3, "owner"), (4, "owner")]
    rep_check = check_customer_import(session, north["reps"][0], text)
    assert (2, "owner") in [(p.row, p.field) for p in rep_check.blocking]


def test_customer_import_into_a_pool(session, sales_org):
    pool = create_pool(session, "East pool", "customer")
    lead_pool = create_pool(session, "Leads", "lead")
    director = sales_org["director"]
    assert import_customers(session, director, "name\nPooled\n", now=NOW, pool_id=pool.id) == 1
    pooled = session.scalar(select(Customer).where(Customer.name == "Pooled"))
    assert (pooled.owner_id, pooled.pool_id) == (None, pool.id)
    with pytest.raises(InvalidInput) as caught:
        check_customer_import(session, director, "name\nX\n", pool_id=lead_pool.id)
    assert "pool" in caught.value.fields


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tier\nA\n", RowProblem(1, "name", "column is missing")),
        (
            "name,colour\nX,red\n",
            RowProblem(
                1,
                "colour",
                "unknown column; use name, tier, industry, phone, email, territory, owner",
            ),
        ),
        ("name,Name\nX,Y\n", RowProblem(1, "Name", "appears twice")),
        ("name\nX,extra\n", RowProblem(2, "row", "has more cells than the header")),
        ("name,tier\n,A\n", RowProblem(2, "name", "is required")),
        ("name\n" + "x" * 201 + "\n", RowProblem(2, "name", "is longer than 200 characters")),
    ],
)
def test_customer_import_names_the_row_and_field(session, sales_org, text, problem):
    check = check_customer_import(session, sales_org["director"], text)
    assert problem in check.blocking


def test_customer_import_reads_excel_files(session, sales_org):
    director = sales_org["director"]
    semicolons = "名称;等级\n华东贸易有限公司;B\n"
    assert check_customer_import(session, director, semicolons).rows[0]["tier"] == "B"
    gbk = decode_upload("name\n华南物流\n".encode("gb18030"))
    assert "华南物流" in gbk
    assert decode_upload("\ufeffname\nX\n".encode()) == "name\nX\n"
    with pytest.raises(InvalidInput):
        decode_upload(b"x" * (MAX_IMPORT_BYTES + 1))
    with pytest.raises(InvalidInput):
        decode_upload(b"  \n")
    multiline = 'name,industry\n"Quoted, Inc","a\nb"\nNext,\n'
    check = check_customer_import(session, director, multiline)
    assert [r["row"] for r in check.rows] == [2, 3]
    assert check.rows[0]["name"] == "Quoted, Inc"


def test_lead_import_goes_into_a_lead_pool_all_or_nothing(session, sales_org):
    marketer_roles = sales_org["director"]  # directors import leads too
    rep = sales_org["north"]["reps"][0]
    pool = create_pool(session, "Inbound", "lead")
    session.add(Campaign(name="Autumn fair", channel="event"))
    session.flush()
    with pytest.raises(Forbidden):
        check_lead_import(session, rep, "name\nX\n", pool_id=pool.id)
    with pytest.raises(InvalidInput):
        check_lead_import(session, marketer_roles, "name\nX\n", pool_id=None)
    bad = "name,company,campaign\nLi,Lei Co,autumn fair\nHan,,Spring\n"
    with pytest.raises(ImportRejected) as caught:
        import_leads(session, marketer_roles, bad, now=NOW, pool_id=pool.id)
    assert [(p.row, p.field) for p in caught.value.check.blocking] == [(3, "campaign")]
    assert _count(session, Lead) == 0
    good = "name,company,campaign,source\nLi,Lei Co,autumn fair,\nHan,Mei Ltd,,fair\n"
    assert import_leads(session, marketer_roles, good, now=NOW, pool_id=pool.id) == 2
    leads = session.scalars(select(Lead).order_by(Lead.name)).all()
    assert [(lead.name, lead.pool_id, lead.source) for lead in leads] == [
        ("Han", pool.id, "fair"),
        ("Li", pool.id, "import"),
    ]
    assert leads[1].campaign_id is not None
