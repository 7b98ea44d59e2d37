"""The reminder outbox: e-mail each recorded reminder once, in the user's language, over SMTP.

Settings come from the environment: STAGECRAFT_SMTP_HOST (no host: e-mail is off and reminders
are marked skipped), STAGECRAFT_SMTP_PORT (25) and STAGECRAFT_SMTP_FROM. Rows are taken with
FOR UPDATE SKIP LOCKED and marked in the same transaction, so two schedulers never send the same
reminder; only a crash between the SMTP reply and the commit can repeat one.
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import User
from rules.messages import render
from rules.models import MailOptOut, Reminder

BATCH = 100
MAX_PER_RUN = 1000
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "stagecraft@localhost"
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> SmtpSettings | None:
        """Return the server named by STAGECRAFT_SMTP_*, or None when no host is set."""
        host = os.environ.get("STAGECRAFT_SMTP_HOST", "").strip()
        if not host:
            return None
        return cls(
            host=host,
            port=int(os.environ.get("STAGECRAFT_SMTP_PORT") or 25),
            sender=os.environ.get("STAGECRAFT_SMTP_FROM") or "stagecraft@localhost",
        )


def opt_out_of_mail(session: Session, user_id: int, kind: str = "*") -> None:
    """Stop reminder e-mails of one kind ("*": all) for a user; in-app reminders continue."""
    if session.get(MailOptOut, (user_id, kind)) is None:
        session.add(MailOptOut(user_id=user_id, kind=kind))
        session.flush()


def opt_in_to_mail(session: Session, user_id: int, kind: str = "*") -> None:
    found = session.get(MailOptOut, (user_id, kind))
    if found is not None:
        session.delete(found)
        session.flush()


def compose(reminder: Reminder, user: User, sender: str) -> EmailMessage:
    """Build the e-mail for a reminder in the user's language."""
    subject, body = render(reminder.kind, user.locale, reminder.params)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = user.email or ""
    message["Message-ID"] = make_msgid(idstring=f"reminder-{reminder.id}")
    message.set_content(body + "\n\n-- \nStagecraft\n")
    return message


def send_reminder_mail(session: Session, now: datetime, *, smtp: SmtpSettings | None = None) -> int:
    """E-mail pending reminders; return how many were sent."""
    settings = smtp or SmtpSettings.from_env()
    sent = 0
    handled = 0
    while handled < MAX_PER_RUN:
        rows = session.execute(
            select(Reminder, User)
            .join(User, User.id == Reminder.user_id)
            .where(Reminder.email_status == "pending")
            .order_by(Reminder.id)
            .limit(BATCH)
            .with_for_update(of=Reminder, skip_locked=True)
        ).all()
        if not rows:
            break
        handled += len(rows)
        if settings is None:
            for reminder, _ in rows:
                _mark(reminder, "skipped", now, "no SMTP server configured")
            continue
        sent += _send_batch(session, settings, [(r, u) for r, u in rows], now)
    session.flush()
    return sent


def _send_batch(
    session: Session, settings: SmtpSettings, rows: list[tuple[Reminder, User]], now: datetime
) -> int:
    opted_out = set(
        session.execute(
            select(MailOptOut.user_id, MailOptOut.kind).where(
                MailOptOut.user_id.in_({u.id for _, u in rows})
            )
        ).all()
    )
    wanted = []
    for reminder, user in rows:
        if (user.id, "*") in opted_out or (user.id, reminder.kind) in opted_out:
            _mark(reminder, "skipped", now, "the user opted out")
        elif not user.email or not user.active:
            _mark(reminder, "skipped", now, "no e-mail address")
        else:
            wanted.append((reminder, user))
    if not wanted:
        return 0
    sent = 0
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as server:
            for reminder, user in wanted:
                try:
                    server.send_message(compose(reminder, user, settings.sender))
                except smtplib.SMTPRecipientsRefused as exc:
                    _mark(reminder, "failed", now, f"refused: {exc.recipients}")
                else:
                    _mark(reminder, "sent", now)
                    sent += 1
    except (OSError, smtplib.SMTPException) as exc:
        for reminder, _ in wanted:
            if reminder.email_status == "pending":
                _retry_later(reminder, now, f"{type(exc).__name__}: {exc}")
    return sent


def _mark(reminder: Reminder, status: str, now: datetime, error: str | None = None) -> None:
    reminder.email_status, reminder.email_error = status, error
    if status == "sent":
        reminder.emailed_at = now


def _retry_later(reminder: Reminder, now: datetime, error: str) -> None:
    reminder.email_attempts += 1
    reminder.email_error = error[:2000]
    if reminder.email_attempts >= MAX_ATTEMPTS:
        reminder.email_status = "failed"
