"""Reminder e-mails, checked against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from rules.mail import SmtpSettings, opt_in_to_mail, opt_out_of_mail, send_reminder_mail
from rules.models import Reminder
from rules.reminders import Due, record_reminders
from tests.conftest import NOW


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, SmtpSettings]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpSettings("127.0.0.1", port, "reminders@stagecraft.test")
    finally:
        controller.stop()


def _remind(session, user, kind="task_overdue", record_id=1, **params):
    values = {"title": "Call Acme", "due": "2026-11-02 09:00 UTC", **params}
    return record_reminders(session, kind, [Due(record_id, user.id, "", values)], NOW)


def test_mail_is_sent_once_in_the_users_language(session, make_user, smtp_server):
    inbox, settings = smtp_server
    english = make_user("rep", email="eve@example.com")
    chinese = make_user("rep", email="wang@example.com", locale="zh_CN")
    _remind(session, english, record_id=1)
    _remind(session, chinese, record_id=1)
    assert send_reminder_mail(session, NOW, smtp=settings) == 2
    assert send_reminder_mail(session, NOW + timedelta(minutes=1), smtp=settings) == 0
    by_to = {m["To"]: m for m in inbox.messages}
    assert sorted(by_to) == ["eve@example.com", "wang@example.com"]
    assert by_to["eve@example.com"]["Subject"] == "Task overdue: Call Acme"
    assert "was due on 2026-11-02 09:00 UTC" in by_to["eve@example.com"].get_content()
    assert by_to["wang@example.com"]["Subject"] == "任务已逾期：Call Acme"
    assert "仍未完成" in by_to["wang@example.com"].get_content()
    assert by_to["eve@example.com"]["From"] == "reminders@stagecraft.test"
    statuses = session.scalars(select(Reminder.email_status)).all()
    assert statuses == ["sent", "sent"]


def test_mail_respects_opt_out_per_kind_and_for_all(session, make_user, smtp_server):
    inbox, settings = smtp_server
    user = make_user("rep", email="olga@example.com")
    opt_out_of_mail(session, user.id, "task_overdue")
    _remind(session, user, "task_overdue", 1)
    _remind(session, user, "task_due_soon", 2)
    assert send_reminder_mail(session, NOW, smtp=settings) == 1
    assert [m["Subject"] for m in inbox.messages] == ["Task due soon: Call Acme"]
    opt_in_to_mail(session, user.id, "task_overdue")
    opt_out_of_mail(session, user.id)
    _remind(session, user, "task_overdue", 3)
    assert send_reminder_mail(session, NOW, smtp=settings) == 0
    assert len(inbox.messages) == 1
    skipped = session.scalars(
        select(Reminder.email_error).where(Reminder.email_status == "skipped")
    ).all()
    assert skipped == ["the user opted out", "the user opted out"]


def test_mail_without_address_or_server_is_skipped_not_retried(session, make_user, monkeypatch):
    monkeypatch.delenv("STAGECRAFT_SMTP_HOST", raising=False)
    user = make_user("rep", email="x@example.com")
    _remind(session, user)
    assert send_reminder_mail(session, NOW) == 0
    assert session.scalars(select(Reminder.email_status)).all() == ["skipped"]


def test_mail_server_down_is_retried_then_given_up(session, make_user):
    user = make_user("rep", email="x@example.com")
    _remind(session, user)
    closed = SmtpSettings("127.0.0.1", _free_port(), timeout=2)
    for attempt in range(3):
        send_reminder_mail(session, NOW + timedelta(minutes=attempt), smtp=closed)
    reminder = session.scalars(select(Reminder)).one()
    assert (reminder.email_status, reminder.email_attempts) == ("failed", 3)
    assert "ConnectionRefusedError" in (reminder.email_error or "")


def test_mail_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("STAGECRAFT_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("STAGECRAFT_SMTP_PORT", "2525")
    monkeypatch.setenv("STAGECRAFT_SMTP_FROM", "crm@example.com")
    assert SmtpSettings.from_env() == SmtpSettings("mail.example.com", 2525, "crm@example.com")
    monkeypatch.setenv("STAGECRAFT_SMTP_HOST", "")
    assert SmtpSettings.from_env() is None


def test_recycle_warning_mail_names_the_reason_in_chinese(session, make_user, smtp_server):
    inbox, settings = smtp_server
    user = make_user("rep", email="li@example.com", locale="zh_CN")
    params = {
        "customer": "华东机械",
        "pool": "华东公海",
        "due": "2026-11-05",
        "reason": "no_followup",
        "days": 27,
        "threshold": 30,
    }
    record_reminders(session, "recycle_warning", [Due(9, user.id, "2026-11-05", params)], NOW)
    send_reminder_mail(session, NOW, smtp=settings)
    [message] = inbox.messages
    assert message["Subject"] == "客户 华东机械 将于 2026-11-05 退回公海"
    assert "未跟进：已 27 天，上限 30 天" in message.get_content()
