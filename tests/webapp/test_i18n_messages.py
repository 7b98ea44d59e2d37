"""Service messages, field errors and task-form labels in the reader's language; and no English UI
text left on the Chinese pages of the core blueprints.

Uses the permission matrix's fixed data set (one per module and database).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask

from crm.errors import fields_error, msg
from tests.webapp.test_permission_matrix import ROUTES, SECRET, _sign_in
from tests.webapp.test_permission_matrix import matrix as matrix  # the module's data set

ZH = "zh_CN"


def signed_in(m: Any, username: str, lang: str) -> Any:
    client, token = _sign_in(m.app, username)
    client.get(f"/?lang={lang}")
    return client, token


@pytest.fixture(scope="module")
def app_only() -> Flask:
    from webapp import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True})


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "you have made today's 3 claims of tier A"),
        (ZH, "您今天已领取 3 个 A 级客户"),
    ],
)
def test_translate_fills_a_service_message_in_the_readers_language(app_only, lang, expected):
    from webapp.errors import translate

    message = msg(
        "you have made today's %(daily_claims)s claims of tier %(tier)s", daily_claims=3, tier="A"
    )
    assert message == "you have made today's 3 claims of tier A"  # plain English below the web
    with app_only.test_request_context(f"/?lang={lang}"):
        assert translate(message) == expected


def test_translate_handles_plain_text_engine_messages_and_unknown_text(app_only):
    from webapp.errors import translate, translate_fields

    error = fields_error(name="is required", tier=msg("must be one of %(items)s", items="A, B"))
    with app_only.test_request_context(f"/?lang={ZH}"):
        assert translate(error.message) == "请更正：name, tier"
        assert translate_fields(error.fields) == {
            "name": ["必填"],
            "tier": ["必须是以下之一：A, B"],
        }
        # The engine's f-string messages are recognised by their pattern.
        assert translate("task 'Call Ann' is already claimed by rita") == (
            "任务“Call Ann”已被 rita 认领"
        )
        assert translate("Something nobody translated") == "Something nobody translated"
        assert translate("") == ""


@pytest.mark.parametrize(
    ("lang", "error", "absent"),
    [(ZH, "必填", "is required"), ("en", "is required", "必填")],
)
def test_page_field_error_is_in_the_page_language(matrix, lang, error, absent):
    client, token = signed_in(matrix, "north_rep1", lang)
    response = client.post(
        f"/customers/{matrix.ids['customer']}/contacts", data={"name": "", "csrf_token": token}
    )
    assert response.status_code == 422
    field_error = re.search(r'<p class="field-error" role="alert">([^<]*)</p>', response.text)
    assert field_error is not None
    assert field_error.group(1) == error
    assert absent not in response.text


def test_service_refusal_page_is_in_chinese_without_the_name_of_the_record(matrix):
    client, token = signed_in(matrix, "south_rep1", ZH)
    response = client.post(
        f"/pool/customers/{matrix.ids['customer']}/claim", data={"csrf_token": token}
    )
    assert response.status_code == 409
    assert f"客户 {matrix.ids['customer']} 已不在公海中：已被他人抢先领取" in response.text
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("lang", "label", "choice", "help_text"),
    [
        (ZH, "通话结果", "无人接听", "线索提到的预算（如有）。"),
        ("en", "Outcome of the call", "No answer", "The lead's budget, if they mentioned one."),
    ],
)
def test_task_form_labels_are_in_the_page_language(matrix, lang, label, choice, help_text):
    client, _ = signed_in(matrix, "north_rep1", lang)
    page = client.get(f"/tasks/{matrix.ids['task']}").text
    assert label in page
    assert f"> {choice}</label>" in page or f">{choice}</option>" in page
    assert help_text.replace("'", "&#39;") in page


def test_task_form_field_error_is_in_chinese(matrix):
    client, token = signed_in(matrix, "north_rep1", ZH)
    response = client.post(
        f"/tasks/{matrix.ids['task']}",
        data={"csrf_token": token, "outcome": "", "budget": "lots"},
    )
    assert response.status_code == 422
    assert "“lots” 不是数字。" in response.text
    assert "此项为必填项。" in response.text
    assert "is not a number" not in response.text


def test_api_errors_follow_the_accept_language(matrix):
    headers = {"Authorization": f"Bearer {matrix.tokens['north_rep1']}"}
    zh = matrix.clients[""].post(
        f"/api/v1/customers/{matrix.ids['customer']}/activities",
        json={"kind": "fax", "subject": "x"},
        headers={**headers, "Accept-Language": "zh-CN"},
    )
    assert zh.status_code == 422
    assert zh.get_json()["error"] == "请更正：kind"
    assert zh.get_json()["fields"]["kind"] == ["必须是以下之一：call, visit, email, note。"]
    en = matrix.clients[""].post(
        f"/api/v1/customers/{matrix.ids['customer']}/activities",
        json={"kind": "fax", "subject": "x"},
        headers={**headers, "Accept-Language": "en"},
    )
    assert en.get_json()["error"] == "please correct: kind"


class _VisibleText(HTMLParser):
    """Collect what a reader sees: text outside scripts, styles and task instructions (process
    data written in the BPMN), plus titles, placeholders and labels for screen readers."""

    SKIPPED = ("script", "style")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.depth: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        hidden = tag in self.SKIPPED or "instructions" in (found.get("class") or "").split()
        if hidden or (self.depth and tag == self.depth[0]):
            self.depth.append(tag)
        for name in ("title", "placeholder", "aria-label", "alt"):
            if found.get(name) and not self.depth:
                self.parts.append(found[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == self.depth[-1]:
            self.depth.pop()

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


# Words that stay as they are in Chinese: codes, names of things, the language switch.
KEPT = {
    "Stagecraft",
    "English",
    "CSV",
    "UTF",
    "UTC",
    "CNY",
    "SO-",
    "QT-",
    "Markdown",
    "Ann",
    # CSV column names (the file's header row must use them literally)
    "name",
    "company",
    "phone",
    "email",
    "source",
    "campaign",
    "tier",
    "industry",
    "owner",
    "territory",
    "address",
    # The analytics area's menu entry has its own catalogue (issue 7).
    "Analytics",
}
_ENGLISH = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ,.:;()/-]+[A-Za-z][A-Za-z'’-]*)*")


def _data_words(m: Any) -> set[str]:
    """The data set's own names (people, pools, records), which are not UI text."""
    words = {"East", "East customers", "East leads", "Lotus Pooled", "Objections", "Answer them"}
    for username in m.ids:
        letters = re.sub(r"\d", "", username)
        words |= {letters.replace("_", " ").title(), *letters.split("_")}
    return words


@pytest.mark.parametrize("username", ["north_rep1", "north_manager", "ada", "fiona", "mark"])
def test_chinese_pages_show_no_english_ui_text(matrix, username):
    client, _ = signed_in(matrix, username, ZH)
    allowed = KEPT | _data_words(matrix)
    left: dict[str, str] = {}
    for case in ROUTES:
        if case.method != "GET" or case.api or case.path.endswith(".csv"):
            continue
        if case.endpoint == "vendor.asset":
            continue
        path = case.path.format(**matrix.ids)
        response = client.get(path)
        if response.status_code != 200:
            continue
        parser = _VisibleText()
        parser.feed(response.text)
        for part in parser.parts:
            for found in _ENGLISH.finditer(part):
                text = found.group(0).strip(" ,.:;()/-")
                if len(text) > 2 and text not in allowed and SECRET not in text:
                    left.setdefault(text, path)
    assert left == {}, "English left on Chinese pages"
