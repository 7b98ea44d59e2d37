"""The words of each reminder, in English and Simplified Chinese (the user's `locale` picks)."""

from __future__ import annotations

from typing import Any

# kind -> language -> (subject, body); bodies are plain text, params are formatted in.
TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "task_due_soon": {
        "en": ("Task due soon: {title}", 'Your task "{title}" is due on {due}.'),
        "zh": ("任务即将到期：{title}", "您的任务“{title}”将于 {due} 到期。"),
    },
    "task_overdue": {
        "en": ("Task overdue: {title}", 'Your task "{title}" was due on {due} and is still open.'),
        "zh": ("任务已逾期：{title}", "您的任务“{title}”已于 {due} 到期，仍未完成。"),
    },
    "installment_due": {
        "en": (
            "Payment due on {due}: {order}",
            "Installment {seq} of order {order} ({customer}), {amount} {currency}, "
            "is due on {due}.",
        ),
        "zh": (
            "{due} 到期应收款：{order}",
            "订单 {order}（{customer}）第 {seq} 期款项 {amount} {currency} 将于 {due} 到期。",
        ),
    },
    "followup_due": {
        "en": (
            "Follow up with {customer}",
            'You planned to follow up with {customer} on {due} (last time: "{subject}").',
        ),
        "zh": ("请跟进 {customer}", "您计划于 {due} 跟进 {customer}（上次：“{subject}”）。"),
    },
    "approval_overdue": {
        "en": (
            "Approval waiting: {title}",
            '"{title}" has waited for your decision since {since}, longer than {hours} hours.',
        ),
        "zh": ("审批等待中：{title}", "“{title}”自 {since} 起等待您的审批，已超过 {hours} 小时。"),
    },
    "recycle_warning": {
        "en": (
            "{customer} goes back to the pool on {due}",
            "{customer} goes back to {pool} on {due} ({reason}: {days} of {threshold} days). "
            "Log a follow-up or move the deal on to keep the customer.",
        ),
        "zh": (
            "客户 {customer} 将于 {due} 退回公海",
            "客户 {customer} 将于 {due} 退回 {pool}"
            "（{reason}：已 {days} 天，上限 {threshold} 天）。"
            "请及时跟进或推进商机以保留该客户。",
        ),
    },
}

REASONS: dict[str, dict[str, str]] = {
    "no_followup": {"en": "no follow-up", "zh": "未跟进"},
    "no_opportunity": {"en": "no opportunity", "zh": "无商机"},
    "no_deal": {"en": "no deal won", "zh": "未成交"},
    "stage_unchanged": {"en": "deal stage unchanged", "zh": "商机阶段未推进"},
    "contract_ended": {"en": "contract ended", "zh": "合同已到期"},
}


def language(locale: str | None) -> str:
    """Return "zh" for any Chinese locale ("zh_CN", "zh-Hans"), else "en"."""
    return "zh" if (locale or "").lower().startswith("zh") else "en"


def render(kind: str, locale: str | None, params: dict[str, Any]) -> tuple[str, str]:
    """Return the subject and body of a reminder in the user's language."""
    lang = language(locale)
    subject, body = TEXTS[kind][lang]
    values = dict(params)
    if "reason" in values:
        values["reason"] = REASONS.get(values["reason"], {}).get(lang, values["reason"])
    return subject.format(**values), body.format(**values)
