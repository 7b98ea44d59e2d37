"""Task forms: every widget, typed values, field messages, drafts, rows, stale forms, escaping."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select

from crm.directory.models import User
from crm.directory.services import actor_for
from crm.work import claim_task_as, complete_task_as
from engine.db import utcnow
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent
from tests.conftest import FIXTURES, FORMS, NOW
from tests.webapp import test_inbox
from tests.webapp.conftest import csrf_token
from webapp.taskforms.fields import add_row, build_fields, raw_from_values, remove_row
from webapp.taskforms.values import check_form, coerce

# The org, its lead follow-up tasks and a task reader, shared with the inbox tests.
org, start_task, task_row = test_inbox.org, test_inbox.start_task, test_inbox.task_row

EVERY_WIDGET = {
    "type": "object",
    "properties": {
        "name": {"title": "Name", "type": "string", "maxLength": 80},
        "notes": {"title": "Notes", "type": "string"},
        "budget": {"title": "Budget", "type": "number", "minimum": 0},
        "seats": {"title": "Seats", "type": "integer"},
        "price": {"title": "Price", "type": "number", "multipleOf": 0.01},
        "fee": {"title": "Fee", "type": "number", "format": "money"},
        "close": {"title": "Close date", "type": "string", "format": "date"},
        "tier": {
            "title": "Tier",
            "type": "integer",
            "oneOf": [{"const": 1, "title": "Gold"}, {"const": 2, "title": "Silver"}],
        },
        "channel": {
            "title": "Channel",
            "type": "string",
            "oneOf": [{"const": "phone", "title": "Phone"}, {"const": "visit", "title": "Visit"}],
        },
        "products": {
            "title": "Products",
            "type": "array",
            "items": {"type": "string", "enum": ["crm", "erp", "bi"]},
        },
        "regions": {
            "title": "Regions",
            "type": "array",
            "items": {"type": "string", "oneOf": [{"const": "e", "title": "East"}]},
        },
        "urgent": {"title": "Urgent", "type": "boolean"},
        "address": {
            "title": "Address",
            "type": "object",
            "properties": {"city": {"type": "string", "title": "City"}},
            "required": ["city"],
        },
        "lines": {
            "title": "Lines",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "product": {"type": "string", "title": "Product"},
                    "qty": {"type": "integer", "title": "Quantity", "minimum": 1},
                },
                "required": ["product", "qty"],
            },
        },
        "tags": {"title": "Tags", "type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "tier", "lines"],
}
EVERY_UI = {
    "name": {"ui:placeholder": "Full name"},
    "notes": {"ui:widget": "textarea", "ui:options": {"rows": 6}},
    "channel": {"ui:widget": "radio"},
    "products": {"ui:widget": "select"},
    "regions": {"ui:widget": "checkboxes"},
}


class _Controls(HTMLParser):
    """Collect form controls by name: tag, attributes and (for textareas) their text."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, list[dict]] = {}
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag in ("input", "select", "textarea", "button") and found.get("name"):
            found["tag"] = tag
            found["text"] = ""
            self.controls.setdefault(found["name"], []).append(found)
            self._open = found if tag in ("textarea", "button") else None
        if tag == "option" and self._open is None:
            self._option = found

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag in ("textarea", "button"):
            self._open = None


def controls(html: str) -> dict[str, list[dict]]:
    parser = _Controls()
    parser.feed(html)
    return parser.controls


@pytest.fixture
def render(app):
    from webapp.taskforms.render import render_fields

    def run(schema, ui=None, raw=None, errors=None, headers=None):
        with app.test_request_context(headers=headers or {}):
            return str(render_fields(build_fields(schema, ui, raw), errors, action="/tasks/1"))

    return run


def test_task_form_renders_every_widget(render):
    html = render(EVERY_WIDGET, EVERY_UI)
    found = controls(html)
    assert found["name"][0]["placeholder"] == "Full name"
    assert "required" in found["name"][0]
    assert found["name"][0]["maxlength"] == "80"
    assert (found["notes"][0]["tag"], found["notes"][0]["rows"]) == ("textarea", "6")
    assert found["budget"][0]["inputmode"] == "decimal"
    assert found["seats"][0]["inputmode"] == "numeric"
    assert 'class="tf-input tf-money-input"><input type="text" id="f-price"' in html
    assert 'class="tf-input tf-money-input"><input type="text" id="f-fee"' in html
    assert found["close"][0]["type"] == "date"
    assert found["tier"][0]["tag"] == "select"
    assert "multiple" not in found["tier"][0]
    assert re.search(r'<option value="1">Gold</option>\s*<option value="2">Silver</option>', html)
    assert [c["value"] for c in found["channel"]] == ["phone", "visit"]
    assert {c["type"] for c in found["channel"]} == {"radio"}
    assert found["products"][0]["tag"] == "select"
    assert "multiple" in found["products"][0]
    assert (found["regions"][0]["type"], found["regions"][0]["value"]) == ("checkbox", "e")
    assert found["urgent"][0]["type"] == "checkbox"
    assert "<legend>Address</legend>" in html
    assert found["address.city"][0]["type"] == "text"
    # A required array of objects starts with one row, and rows can be added and removed.
    assert found["lines.0.__row__"][0]["type"] == "hidden"
    assert found["lines.0.qty"][0]["inputmode"] == "numeric"
    assert "lines.1.product" not in found
    assert [b["value"] for b in found["_add_row"]] == ["lines"]
    assert [b["value"] for b in found["_remove_row"]] == ["lines.0"]
    assert found["_add_row"][0]["hx-post"] == "/tasks/1"
    assert found["tags"][0]["tag"] == "textarea"


def test_task_form_adding_and_removing_rows_keeps_what_was_typed(render):
    raw = {
        "name": ["Ann"],
        "lines.0.__row__": ["1"],
        "lines.0.product": ["Alpha"],
        "lines.0.qty": ["1"],
        "lines.1.__row__": ["1"],
        "lines.1.product": ["Beta"],
        "lines.1.qty": ["2x"],
    }
    grown = controls(render(EVERY_WIDGET, EVERY_UI, add_row(raw, "lines")))
    assert [grown[f"lines.{n}.product"][0].get("value") for n in range(3)] == [
        "Alpha",
        "Beta",
        "",
    ]
    assert grown["name"][0]["value"] == "Ann"
    shrunk = controls(render(EVERY_WIDGET, EVERY_UI, remove_row(raw, "lines.0")))
    assert shrunk["lines.0.product"][0]["value"] == "Beta"
    assert shrunk["lines.0.qty"][0]["value"] == "2x"
    assert "lines.1.product" not in shrunk


def test_task_form_coerces_text_to_typed_values():
    raw = {
        "name": [" Ann "],
        "budget": ["1,234.50"],
        "seats": ["7"],
        "price": ["19.99"],
        "fee": ["20"],
        "close": ["2026-11-30"],
        "tier": ["2"],
        "channel": ["visit"],
        "products": ["crm", "bi"],
        "regions": ["e"],
        "urgent": ["on"],
        "address.city": ["Hangzhou"],
        "lines.3.__row__": ["1"],  # numbers need not start at 0: rows count by position
        "lines.3.product": ["Widget"],
        "lines.3.qty": ["2"],
        "tags": ["a\n\n b \n"],
        "notes": [""],
    }
    values, errors = check_form(EVERY_WIDGET, build_fields(EVERY_WIDGET, EVERY_UI, raw))
    assert errors == {}
    assert values == {
        "name": "Ann",
        "budget": 1234.5,
        "seats": 7,
        "price": 19.99,
        "fee": 20,
        "close": "2026-11-30",
        "tier": 2,
        "channel": "visit",
        "products": ["crm", "bi"],
        "regions": ["e"],
        "urgent": True,
        "address": {"city": "Hangzhou"},
        "lines": [{"product": "Widget", "qty": 2}],
        "tags": ["a", "b"],
    }
    # A saved draft shows the same text again and reads back to the same values.
    again = raw_from_values(EVERY_WIDGET, EVERY_UI, values)
    assert coerce(build_fields(EVERY_WIDGET, EVERY_UI, again)) == values


def test_task_form_text_that_cannot_be_read_is_a_field_error(render):
    raw = {
        "name": ["Ann"],
        "budget": ["12,5x"],
        "seats": ["3.5"],
        "price": ["1.234"],
        "close": ["31/11/2026"],
        "tier": ["9"],
        "lines.0.__row__": ["1"],
        "lines.0.product": ["Widget"],
        "lines.0.qty": ["0"],
    }
    values, errors = check_form(EVERY_WIDGET, build_fields(EVERY_WIDGET, EVERY_UI, raw))
    codes = {path: [m.code for m in messages] for path, messages in errors.items()}
    assert codes == {
        "budget": ["not_number"],
        "seats": ["not_integer"],
        "price": ["multipleOf"],
        "close": ["not_date"],
        "tier": ["not_option"],  # not also "required": the user did choose something
        "lines.0.qty": ["minimum"],
    }
    assert "budget" not in values
    html = render(EVERY_WIDGET, EVERY_UI, raw, errors)
    found = controls(html)
    assert found["budget"][0]["value"] == "12,5x"
    assert found["budget"][0]["aria-invalid"] == "true"
    assert '<p class="tf-error" id="f-budget-error">“12,5x” is not a number.</p>' in html
    assert '<p class="tf-error" id="f-lines-0-qty-error">Must be at least 1.</p>' in html
    chinese = render(EVERY_WIDGET, EVERY_UI, raw, errors, headers={"Accept-Language": "zh-CN"})
    assert "“12,5x” 不是数字。" in chinese


def test_task_form_if_then_requires_a_comment_only_on_reject():
    schema = json.loads((FORMS / "quote_review/approve.schema.json").read_text())
    ui = json.loads((FORMS / "quote_review/approve.uischema.json").read_text())

    def problems(raw):
        return {
            p: [m.code for m in ms]
            for p, ms in check_form(schema, build_fields(schema, ui, raw))[1].items()
        }

    assert problems({"decision": ["reject"], "comment": [""]}) == {"comment": ["required"]}
    assert problems({"decision": ["approve"], "comment": [""]}) == {}
    assert problems({"decision": ["reject"], "comment": ["too much"]}) == {}
    assert problems({}) == {"decision": ["required"]}


def _lead_task(start_task):
    return start_task("rita", "Acme")


def test_task_page_shows_form_instructions_and_lead(client, sign_in, start_task):
    task = _lead_task(start_task)
    sign_in("rita")
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert "<h2>Call Acme</h2>" in page
    assert "<strong>Acme</strong>" in page
    found = controls(page)
    assert [c["value"] for c in found["outcome"]] == ["interested", "not_interested", "no_answer"]
    assert "Interested - send a quote" in page
    assert found["budget"][0]["placeholder"] == "e.g. 12000"
    assert (found["notes"][0]["tag"], found["notes"][0]["rows"]) == ("textarea", "5")
    assert '<p class="context-name">Acme</p>' in page
    assert "Save draft" in page
    assert "保存草稿" in client.get(f"/tasks/{task}?lang=zh_CN").get_data(as_text=True)


def test_task_page_errors_show_beside_fields_and_keep_what_was_typed(
    client, sign_in, start_task, task_row
):
    task = _lead_task(start_task)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    response = client.post(
        f"/tasks/{task}",
        data={"csrf_token": token, "budget": "12,5x", "notes": "called <b>twice</b>"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please correct the fields marked below." in page
    assert '<p class="tf-error" id="f-budget-error">“12,5x” is not a number.</p>' in page
    assert '<p class="tf-error" id="f-outcome-error">This field is required.</p>' in page
    found = controls(page)
    assert found["budget"][0]["value"] == "12,5x"
    assert found["notes"][0]["text"] == "called <b>twice</b>"
    assert task_row(task).status == "open"
    # A choice made is kept too.
    again = client.post(
        f"/tasks/{task}", data={"csrf_token": token, "outcome": "no_answer", "budget": "-5"}
    ).get_data(as_text=True)
    assert "Must be at least 0." in again
    assert ["checked" in c for c in controls(again)["outcome"]] == [False, False, True]


def test_task_page_draft_is_saved_and_shown_again(client, sign_in, start_task, task_row):
    task = _lead_task(start_task)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    response = client.post(
        f"/tasks/{task}",
        data={"csrf_token": token, "_action": "draft", "budget": "1,500", "notes": "call at 3"},
    )
    assert response.status_code == 303
    assert task_row(task).draft == {"budget": 1500, "notes": "call at 3"}
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Draft saved." in page
    found = controls(page)
    assert found["budget"][0]["value"] == "1500"
    assert found["notes"][0]["text"] == "call at 3"
    assert task_row(task).status == "open"


def test_messages_waiting_to_be_shown_do_not_pile_up_in_the_session(
    client, sign_in, start_task
):
    """Posting again and again without loading a page keeps only the latest messages."""
    task = _lead_task(start_task)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    for n in range(12):
        response = client.post(
            f"/tasks/{task}",
            data={"csrf_token": token, "_action": "draft", "notes": f"try {n}"},
        )
        assert response.status_code == 303
    with client.session_transaction() as session:
        assert len(session["_flashes"]) == 3
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert page.count("Draft saved.") == 3  # the latest three, then none
    assert "Draft saved." not in client.get(f"/tasks/{task}").get_data(as_text=True)


def test_task_page_completing_returns_to_the_inbox_with_a_message(
    client, sign_in, start_task, task_row
):
    task = _lead_task(start_task)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    response = client.post(
        f"/tasks/{task}", data={"csrf_token": token, "outcome": "not_interested", "budget": "9"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/inbox"
    assert "“Call the lead” is done." in client.get("/inbox").get_data(as_text=True)
    row = task_row(task)
    assert (row.status, row.completed_by) == ("completed", "rita")


@pytest.fixture
def long_loop(app, org):
    """A loop of form-less "Step" tasks for rita (no lane: the starter does them)."""
    from webapp import db

    with app.app_context():
        deploy_files(
            db.session,
            "admin",
            collect_files([FIXTURES / "long_loop.bpmn"]),
            load_form=folder_form_loader(FIXTURES / "forms"),
            now=NOW,
        )
        rita = db.session.scalar(select(User).where(User.username == "rita"))
        outcome = start_instance(
            db.session, actor_for(rita), "long_loop", now=NOW, data={"limit": 2}
        )
        db.session.commit()
        return outcome.new_tasks[0].id


def test_task_page_without_form_confirms_and_names_the_next_task(client, sign_in, long_loop):
    sign_in("rita")
    page = client.get(f"/tasks/{long_loop}").get_data(as_text=True)
    assert "This task has no form." in page
    assert "Confirm and complete" in page
    token = csrf_token(client, f"/tasks/{long_loop}")
    response = client.post(f"/tasks/{long_loop}", data={"csrf_token": token})
    assert response.status_code == 303
    inbox = client.get("/inbox").get_data(as_text=True)
    assert "“Step” is done. Next for you: “Step”." in inbox


def test_task_page_form_gone_stale_says_so(app, client, sign_in, start_task, task_row):
    from webapp import db

    task = _lead_task(start_task)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    with app.app_context():  # the manager completes it meanwhile
        mona = db.session.scalar(select(User).where(User.username == "mona"))
        complete_task_as(db.session, mona, task, {"outcome": "not_interested"}, now=utcnow())
        db.session.commit()
    response = client.post(f"/tasks/{task}", data={"csrf_token": token, "outcome": "interested"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "This task is no longer open" in page
    assert "It was completed by Mona while you had the form open." in page
    assert 'href="/inbox"' in page
    assert task_row(task).completed_by == "mona"


def test_task_page_open_task_taken_and_done_by_another_rep_is_stale(
    app, client, sign_in, start_task
):
    from webapp import db

    task = start_task(None)
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    with app.app_context():
        ravi = db.session.scalar(select(User).where(User.username == "ravi"))
        claim_task_as(db.session, ravi, task, now=utcnow())
        complete_task_as(db.session, ravi, task, {"outcome": "no_answer"}, now=utcnow())
        db.session.commit()
    response = client.post(f"/tasks/{task}", data={"csrf_token": token, "outcome": "interested"})
    assert response.status_code == 409
    assert "Someone else completed or took over this task" in response.get_data(as_text=True)


def test_task_page_escapes_script_in_instructions_and_data(client, sign_in, start_task):
    task = start_task("rita", "<script>alert(1)</script>")
    sign_in("rita")
    token = csrf_token(client, f"/tasks/{task}")
    client.post(
        f"/tasks/{task}",
        data={"csrf_token": token, "_action": "draft", "notes": "</textarea><script>x()</script>"},
    )
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert "<script>" not in page
    assert "<h2>Call &lt;script&gt;alert(1)&lt;/script&gt;</h2>" in page
    assert "&lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;</textarea>" in page


ROWS_FORM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "lines": {
            "title": "Order lines",
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "product": {"type": "string", "title": "Product"},
                    "qty": {"type": "integer", "title": "Quantity", "minimum": 1},
                },
                "required": ["product", "qty"],
            },
        }
    },
    "required": ["lines"],
}


@pytest.fixture
def rows_task(app, org, tmp_path: Path):
    """A task whose form has repeatable rows (the form_ok fixture with another schema)."""
    from webapp import db

    forms = tmp_path / "forms" / "tests_fixtures"
    forms.mkdir(parents=True)
    (forms / "ok.schema.json").write_text(json.dumps(ROWS_FORM))
    (forms / "ok.uischema.json").write_text("{}")
    with app.app_context():
        deploy_files(
            db.session,
            "admin",
            collect_files([FIXTURES / "form_ok.bpmn"]),
            load_form=folder_form_loader(tmp_path / "forms"),
            now=NOW,
        )
        rita = db.session.scalar(select(User).where(User.username == "rita"))
        outcome = start_instance(db.session, actor_for(rita), "form_flow", now=NOW)
        db.session.commit()
        return outcome.new_tasks[0].id


def test_task_page_rows_grow_without_javascript_and_in_place_with_htmx(
    app, client, sign_in, rows_task, task_row
):
    from webapp import db

    sign_in("rita")
    url = f"/tasks/{rows_task}"
    first = controls(client.get(url).get_data(as_text=True))
    assert "lines.0.product" in first
    assert "lines.1.product" not in first
    token = csrf_token(client, url)
    typed = {
        "csrf_token": token,
        "lines.0.__row__": "1",
        "lines.0.product": "Widget",
        "lines.0.qty": "2",
    }
    grown = client.post(url, data={**typed, "_add_row": "lines"})
    assert grown.status_code == 200
    found = controls(grown.get_data(as_text=True))
    assert found["lines.0.product"][0]["value"] == "Widget"
    assert found["lines.1.product"][0]["value"] == ""
    assert task_row(rows_task).status == "open"
    fragment = client.post(
        url, data={**typed, "_add_row": "lines"}, headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert fragment.startswith('<div id="task-form-fields"')
    assert "lines.1.qty" in controls(fragment)
    done = client.post(
        url,
        data={
            **typed,
            "lines.1.__row__": "1",
            "lines.1.product": "Gadget",
            "lines.1.qty": "1",
        },
    )
    assert done.status_code == 303
    with app.app_context():
        event = db.session.scalar(
            select(InstanceEvent).where(
                InstanceEvent.kind == "task_completed",
                InstanceEvent.task_id == db.session.get(HumanTask, rows_task).task_id,
            )
        )
        assert event.detail["data"] == {
            "lines": [{"product": "Widget", "qty": 2}, {"product": "Gadget", "qty": 1}]
        }
