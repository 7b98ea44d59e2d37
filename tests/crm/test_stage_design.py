"""The manager designer's building blocks: BPMN generator, DMN round trip, checks, previews,
permissions."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from crm.designer.workspace import Workspace
from crm.errors import Forbidden, InvalidInput
from crm.quotes.models import Quote
from crm.sales.services import check_stage_exit
from crm.stage_design.approval_dmn import (
    ApprovalRow,
    approvers_for,
    check_rows,
    read_approval_table,
    write_approval_table,
)
from crm.stage_design.approvals import preview_approval_table
from crm.stage_design.models import DesignOwner
from crm.stage_design.pipeline_bpmn import build_pipeline_bpmn, foreign_elements
from crm.stage_design.pipeline_read import read_pipeline_bpmn
from crm.stage_design.pipelines import preview_pipeline
from crm.stage_design.services import (
    can_edit_design,
    design_history,
    list_designs,
    require_design_editor,
    set_design_owner,
)
from crm.stage_design.stages import PipelineSpec, StageSpec, assign_new_keys, check_stages
from tests.conftest import FORMS, NOW, PROCESSES

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
SPIFF = "{http://spiffworkflow.org/bpmn/schema/1.0/core}"
DI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
SHIPPED_STAGES = {
    "new_business": [
        ("qualification", 10, 14, ()),
        ("needs_analysis", 20, 21, ("decision_maker",)),
        ("proposal", 50, 21, ("approved_quote",)),
        ("negotiation", 75, 14, ("accepted_quote",)),
        ("closing", 90, 7, ("accepted_quote",)),
    ],
    "renewal": [
        ("renewal_review", 60, 30, ()),
        ("renewal_quote", 80, 14, ("approved_quote",)),
        ("renewal_signed", 95, 7, ()),
    ],
}


def _shipped(key: str) -> PipelineSpec:
    return read_pipeline_bpmn((PROCESSES / f"sales_pipeline_{key}.bpmn").read_bytes(), key)


@pytest.mark.parametrize("key", sorted(SHIPPED_STAGES))
def test_read_pipeline_bpmn_gives_the_documented_stages(key):
    spec = _shipped(key)
    assert [(s.key, s.win_rate, s.max_days, s.criteria) for s in spec.stages] == SHIPPED_STAGES[key]
    assert spec.stages[0].guidance  # the stage's own advice is kept for the editor


@pytest.mark.parametrize("key", sorted(SHIPPED_STAGES))
def test_generated_bpmn_reads_back_to_the_same_stages(key):
    spec = _shipped(key)
    assert read_pipeline_bpmn(build_pipeline_bpmn(spec), key) == spec


def test_generated_bpmn_has_the_shipped_structure_and_a_diagram():
    spec = _shipped("new_business")
    root = etree.fromstring(build_pipeline_bpmn(spec))
    process = root.find(f"{BPMN}process")
    shipped = etree.parse(str(PROCESSES / "sales_pipeline_new_business.bpmn")).getroot()

    def ids(node):
        return {e.get("id") for e in node.iter() if e.get("id") and e.tag.startswith(BPMN)}

    shipped_ids, generated_ids = ids(shipped.find(f"{BPMN}process")), ids(process)
    assert shipped_ids == generated_ids  # same elements and flows, same ids
    lane_refs = [r.text for r in process.iter(f"{BPMN}flowNodeRef")]
    assert "proposal" in lane_refs
    assert len(lane_refs) == len(set(lane_refs))
    check = process.find(f"{BPMN}serviceTask[@id='check_exit_proposal']")
    params = {p.get("id"): p.get("value") for p in check.iter(f"{SPIFF}parameter")}
    assert params == {
        "opportunity_id": "opportunity_id",
        "stage": '"proposal"',
        "criteria": '["approved_quote"]',
    }
    timer = process.find(f"{BPMN}boundaryEvent[@id='stale_proposal']")
    assert timer.get("cancelActivity") == "false"
    assert timer.findtext(f".//{BPMN}timeDuration") == '"P21D"'
    shapes = {s.get("bpmnElement"): s for s in root.iter(f"{DI}BPMNShape")}
    flow_nodes = {e.get("id") for e in process if e.tag != f"{BPMN}sequenceFlow" and e.get("id")}
    assert flow_nodes - {"LaneSet_sales_pipeline_new_business"} <= set(shapes)
    edges = {e.get("bpmnElement") for e in root.iter(f"{DI}BPMNEdge")}
    assert edges == {f.get("id") for f in process.iter(f"{BPMN}sequenceFlow")}

    def x_of(element: str) -> float:
        return float(shapes[element][0].get("x"))

    keys = [s.key for s in spec.stages]
    assert [x_of(k) for k in keys] == sorted(x_of(k) for k in keys)  # left to right
    assert x_of("close_won") > x_of("closing")


def test_added_stage_is_generated_between_its_neighbours():
    spec = _shipped("renewal")
    stages = list(spec.stages)
    stages.insert(1, StageSpec("", "Usage check", 70, 5, ("decision_maker",), "Look at usage."))
    stages = assign_new_keys(stages, {s.key for s in spec.stages})
    assert stages[1].key == "usage_check"
    xml = build_pipeline_bpmn(PipelineSpec("renewal", spec.name, tuple(stages)))
    again = read_pipeline_bpmn(xml, "renewal")
    assert [s.key for s in again.stages] == [
        "renewal_review",
        "usage_check",
        "renewal_quote",
        "renewal_signed",
    ]
    process = etree.fromstring(xml).find(f"{BPMN}process")
    back = process.find(f"{BPMN}sequenceFlow[@id='flow_decide_renewal_quote_enter_usage_check']")
    assert back is not None
    assert back.get("name") == "back"
    task = process.find(f"{BPMN}userTask[@id='usage_check']")
    assert "*Back* to return to Renewal review" in task.findtext(
        f".//{SPIFF}instructionsForEndUser"
    )


def test_check_stages_names_row_and_field():
    stages = [
        StageSpec("a", "Alpha", 10, 5),
        StageSpec("a", "alpha", 101, 0, ("telepathy",), "{{ bad }}"),
        StageSpec("Bad Key", "", 10, 5),
        StageSpec("start", "Start", 10, 5),
    ]
    with pytest.raises(InvalidInput) as error:
        check_stages(stages)
    fields = error.value.fields
    assert fields["stages-2-key"] == ["stage 2: key 'a' is already used by stage 1"]
    assert fields["stages-2-label"] == ["stage 2: 'alpha' is already the name of stage 1"]
    assert fields["stages-2-win_rate"] == ["stage 2: the win rate must be from 0 to 100"]
    assert fields["stages-2-max_days"] == ["stage 2: max days must be from 1 to 365"]
    assert fields["stages-2-criteria"] == ["stage 2: unknown exit criterion 'telepathy'"]
    assert fields["stages-2-guidance"] == ["stage 2: the guidance may not contain { or }"]
    assert "must be lower-case letters" in fields["stages-3-key"][0]
    assert fields["stages-3-label"] == ["stage 3: the name is required"]
    assert fields["stages-4-key"] == ["stage 4: key 'start' is reserved"]
    with pytest.raises(InvalidInput) as empty:
        check_stages([])
    assert empty.value.fields == {"stages": ["a pipeline needs at least one stage"]}


def test_check_stage_exit_uses_the_criteria_the_process_passes(
    session, sales_org, make_opportunity
):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)
    # The shipped stage key keeps its shipped criteria when the process lists none.
    assert check_stage_exit(session, deal.id, "proposal") == {
        "ok": False,
        "missing": ["an approved quote"],
    }
    assert check_stage_exit(session, deal.id, "proposal", []) == {"ok": True, "missing": []}
    assert check_stage_exit(session, deal.id, "my_stage", ["decision_maker"]) == {
        "ok": False,
        "missing": ["a decision maker among the customer's contacts"],
    }
    with pytest.raises(InvalidInput):
        check_stage_exit(session, deal.id, "my_stage", ["telepathy"])


# --- approval table -------------------------------------------------------------------------


def _table():
    return read_approval_table((PROCESSES / "quote_approval_chain.dmn").read_bytes())


def test_dmn_round_trip_keeps_every_id_and_entry():
    source = (PROCESSES / "quote_approval_chain.dmn").read_bytes()
    table = _table()
    assert len(table.rows) == 10
    assert table.rows[4].conditions["discount"] == "5 < ? <= 15"
    written = write_approval_table(source, table, list(table.rows))
    assert read_approval_table(written) == table
    ids = lambda xml: [e.get("id") for e in etree.fromstring(xml).iter() if e.get("id")]  # noqa: E731
    assert ids(written) == ids(source)


def test_dmn_rows_can_be_added_removed_and_reordered_with_stable_ids():
    source = (PROCESSES / "quote_approval_chain.dmn").read_bytes()
    table = _table()
    rows = list(table.rows)
    big = ApprovalRow(
        None,
        "Big deals",
        {
            "discount": "<= 5",
            "amount": ">= 1000000",
            "payment_days": "<= 60",
            "delivery_days": ">= 7",
        },
        {"needs_manager": False, "needs_director": True, "needs_finance": False},
    )
    rows = [big, *rows[1:]]  # the first row removed, a new one on top
    rows[1], rows[2] = rows[2], rows[1]
    again = read_approval_table(write_approval_table(source, table, rows))
    assert [r.id for r in again.rows][:3] == [
        "Rule_row_1",
        "Rule_long_payment",
        "Rule_fast_delivery",
    ]
    assert "Rule_no_approval" not in [r.id for r in again.rows]
    assert again.rows[0].conditions["amount"] == ">= 1000000"
    assert approvers_for(
        again,
        again.rows,
        {"discount": 3, "amount": 2_000_000, "payment_days": 30, "delivery_days": 30},
    ) == ["needs_director"]


@pytest.mark.parametrize(
    ("inputs", "chain"),
    [
        ((3, 1000, 30, 30), []),
        ((3, 1000, 30, 3), ["needs_director"]),
        ((3, 1000, 90, 30), ["needs_finance"]),
        ((10, 1000, 30, 30), ["needs_manager"]),
        ((10, 1000, 90, 3), ["needs_manager", "needs_director", "needs_finance"]),
        ((20, 1000, 30, 30), ["needs_manager", "needs_director"]),
        ((20, 1000, 90, 30), ["needs_manager", "needs_director", "needs_finance"]),
    ],
)
def test_shipped_table_gives_the_documented_chains(inputs, chain):
    table = _table()
    data = dict(zip(("discount", "amount", "payment_days", "delivery_days"), inputs, strict=True))
    assert approvers_for(table, table.rows, data) == chain


def test_check_rows_names_row_and_column():
    table = _table()
    rows = list(table.rows)
    rows[1] = ApprovalRow(
        rows[1].id, "x" * 201, {**rows[1].conditions, "discount": "<= five"}, rows[1].outputs
    )
    rows[3] = ApprovalRow(
        rows[3].id,
        "",
        {**rows[3].conditions, "amount": ">", "payment_days": "in (30, 60)"},
        rows[3].outputs,
    )
    rows[6] = ApprovalRow(
        rows[6].id, "", {**rows[6].conditions, "delivery_days": "__import__('os')"}, rows[6].outputs
    )
    with pytest.raises(InvalidInput) as error:
        check_rows(table, rows)
    fields = error.value.fields
    assert fields["rows-2-discount"] == [
        "row 2, Discount (%): '<= five' uses the unknown name 'five'; use numbers and discount, "
        "amount, payment_days, delivery_days"
    ]
    assert fields["rows-2-description"][0].startswith("row 2, Description:")
    assert fields["rows-4-amount"][0].startswith("row 4, Amount: '>' is not a condition")
    assert "write ? for the input" in fields["rows-4-payment_days"][0]
    assert fields["rows-7-delivery_days"][0].startswith("row 7, Delivery in (days):")
    assert "not allowed" in fields["rows-7-delivery_days"][0]
    check_rows(table, list(table.rows))  # the shipped rows are fine


# --- previews on a fixed data set -----------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "processes"
    shutil.copytree(PROCESSES, folder, ignore=shutil.ignore_patterns("commission*"))
    return Workspace(folder, FORMS)


@pytest.fixture
def owned(session, sales_org):
    """North owns new business, the top team (the director's) the approval table."""
    admin = sales_org["admin"] = _admin(session, sales_org)
    set_design_owner(
        session, admin, "pipeline", "new_business", sales_org["north"]["team"].id, now=NOW
    )
    set_design_owner(
        session, admin, "approval_table", "quote_approval_chain", sales_org["top"].id, now=NOW
    )
    return sales_org


def _admin(session, org):
    from crm.directory.services import create_user

    return create_user(session, "root", "Root", ("admin",), now=NOW)


def _deals(session, org, make_opportunity, stages):
    north, south = org["north"]["reps"][0], org["south"]["reps"][0]
    made = []
    for owner, stage, status in stages:
        deal = make_opportunity(north if owner == "north" else south)
        deal.stage, deal.status = stage, status
        made.append(deal)
    session.flush()
    return made


def test_preview_pipeline_counts_open_deals_and_lists_those_in_removed_or_renamed_stages(
    session, owned, make_opportunity, files
):
    deals = _deals(
        session,
        owned,
        make_opportunity,
        [
            ("north", "proposal", "open"),
            ("north", "proposal", "open"),
            ("south", "proposal", "open"),
            ("north", "negotiation", "open"),
            ("north", "qualification", "open"),
            ("north", "proposal", "won"),
        ],
    )
    manager = owned["north"]["manager"]
    spec = _shipped("new_business")
    stages = [s for s in spec.stages if s.key != "proposal"]  # remove proposal
    stages[0] = StageSpec(**{**stages[0].__dict__, "label": "Discovery"})  # rename qualification
    preview = preview_pipeline(session, manager, "new_business", stages, files=files)
    assert preview.open_total == 5
    assert {(c.key, c.count, c.fate) for c in preview.by_stage} == {
        ("qualification", 1, "renamed"),
        ("needs_analysis", 0, "kept"),
        ("proposal", 3, "removed"),
        ("negotiation", 1, "kept"),
        ("closing", 0, "kept"),
    }
    assert preview.affected_total == 4
    # The north manager sees the north deals; the south one is only counted.
    assert sorted((d.id, d.fate) for d in preview.affected) == sorted(
        [(deals[0].id, "removed"), (deals[1].id, "removed"), (deals[4].id, "renamed")]
    )
    kinds = [c["kind"] for c in preview.changes]
    assert kinds == ["removed", "renamed"]
    assert 'name="Discovery"' in preview.bpmn
    assert 'id="proposal"' not in preview.bpmn


def test_preview_approval_table_shows_which_pending_quotes_get_another_chain(
    session, owned, make_opportunity, files
):
    director = owned["director"]
    deal = make_opportunity(owned["north"]["reps"][0])
    quotes = []
    for number, (discount, payment, status) in enumerate(
        [(10, 30, "pending"), (3, 30, "pending"), (12, 90, "pending"), (10, 30, "draft")], 1
    ):
        quote = Quote(
            number=f"Q-{number}",
            opportunity_id=deal.id,
            customer_id=deal.customer_id,
            owner_id=deal.owner_id,
            status=status,
            discount_pct=Decimal(discount),
            total=Decimal("5000"),
            payment_days=payment,
            delivery_date=date(2026, 12, 31),
            created_at=NOW,
        )
        session.add(quote)
        quotes.append(quote)
    session.flush()
    table = _table()
    rows = list(table.rows)
    # The manager band narrows to 5-10 %, and over 10 % goes to the director rows.
    for index in (4, 5, 6, 7):
        rows[index] = ApprovalRow(
            rows[index].id,
            rows[index].description,
            {**rows[index].conditions, "discount": "5 < ? <= 10"},
            rows[index].outputs,
        )
    for index in (8, 9):
        rows[index] = ApprovalRow(
            rows[index].id,
            rows[index].description,
            {**rows[index].conditions, "discount": "> 10"},
            rows[index].outputs,
        )
    preview = preview_approval_table(
        session, director, "quote_approval_chain", rows, files=files, now=NOW
    )
    assert preview.pending_total == 3
    assert preview.changed_total == 1
    (changed,) = preview.changed
    assert changed.number == "Q-3"
    assert changed.old == ["needs_manager", "needs_finance"]
    assert changed.new == ["needs_manager", "needs_director", "needs_finance"]
    assert changed.inputs["delivery_days"] == (date(2026, 12, 31) - NOW.date()).days
    assert preview.gaps == []  # still every probe is covered
    # Without the director rows, big discounts fall through: the preview says so.
    preview = preview_approval_table(
        session, director, "quote_approval_chain", rows[:8], files=files, now=NOW
    )
    assert preview.gaps
    assert all(g.inputs["discount"] > 10 for g in preview.gaps)
    assert preview.changed[0].new is None


# --- ownership -------------------------------------------------------------------------------


def test_design_owners_decide_who_may_edit(session, owned):
    north, south = owned["north"], owned["south"]
    assert can_edit_design(session, north["manager"], "pipeline", "new_business")
    assert not can_edit_design(session, south["manager"], "pipeline", "new_business")
    assert can_edit_design(session, owned["director"], "pipeline", "new_business")  # team above
    assert not can_edit_design(session, north["reps"][0], "pipeline", "new_business")
    assert not can_edit_design(session, north["manager"], "pipeline", "renewal")  # no owner
    assert can_edit_design(session, owned["admin"], "pipeline", "renewal")
    assert not can_edit_design(session, north["manager"], "approval_table", "quote_approval_chain")
    with pytest.raises(Forbidden):
        require_design_editor(session, south["manager"], "pipeline", "new_business")
    with pytest.raises(Forbidden):
        set_design_owner(
            session, north["manager"], "pipeline", "renewal", north["team"].id, now=NOW
        )
    editable = {(d.key, d.editable) for d in list_designs(session, north["manager"])}
    assert editable == {("new_business", True), ("renewal", False), ("quote_approval_chain", False)}
    set_design_owner(session, owned["admin"], "pipeline", "new_business", None, now=NOW)
    assert session.query(DesignOwner).filter_by(key="new_business").count() == 0
    assert not can_edit_design(session, north["manager"], "pipeline", "new_business")
    history = design_history(session, owned["admin"], "pipeline", "new_business")
    assert [(c.changed_by, c.comment) for c in history] == [
        ("root", "owner set to none (admins only)"),
        ("root", f"owner set to {north['team'].name}"),
    ]


def test_foreign_elements_names_what_a_modeler_edit_added():
    source = (PROCESSES / "sales_pipeline_renewal.bpmn").read_bytes()
    spec = read_pipeline_bpmn(source, "renewal")
    assert foreign_elements(source, spec) == []
    edited = source.replace(
        b'<bpmn:endEvent id="end_lost"',
        b'<bpmn:task id="call_the_customer" /><bpmn:endEvent id="end_lost"',
    )
    assert foreign_elements(edited, spec) == ["call_the_customer"]
