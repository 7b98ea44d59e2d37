"""marshmallow schemas of the JSON API: what comes in is validated, what goes out is shaped."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

# Money travels as a decimal string ("1234.50"), never as a binary float.
MONEY = {"type": "string", "format": "decimal", "example": "1234.50"}


class ErrorSchema(Schema):
    error = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class DefinitionSchema(Schema):
    process_id = fields.String()
    name = fields.String()
    version = fields.Integer()
    definition_id = fields.Integer()
    deployed_at = fields.DateTime()


class StartInstanceSchema(Schema):
    process_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    data = fields.Dict(load_default=dict)
    business_key = fields.String(load_default=None, validate=validate.Length(max=255))


class TaskSchema(Schema):
    id = fields.Integer()
    instance_id = fields.Integer()
    process_id = fields.String()
    bpmn_id = fields.String()
    title = fields.String()
    lane = fields.String(allow_none=True)
    candidate_role = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    status = fields.String()
    form = fields.String(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class InstanceSchema(Schema):
    id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()
    status = fields.String()
    business_key = fields.String(allow_none=True)
    started_by = fields.String(allow_none=True)
    started_at = fields.DateTime()
    updated_at = fields.DateTime()
    ended_at = fields.DateTime(allow_none=True)
    data = fields.Dict()
    open_tasks = fields.List(fields.Nested(TaskSchema))
    incidents = fields.List(fields.Dict())


class CompleteTaskSchema(Schema):
    data = fields.Dict(required=True)


class CustomerSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    tier = fields.String(load_default="C", validate=validate.OneOf(["A", "B", "C", "D", "E"]))
    industry = fields.String(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True)
    owner_id = fields.Integer(dump_only=True, allow_none=True)
    confirm_duplicate = fields.Boolean(load_only=True, load_default=False)


class ContactSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    title = fields.String(load_default=None, allow_none=True)
    buying_role = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(["decision_maker", "user", "technical_owner", "coach"]),
    )
    influence = fields.Integer(load_default=3, validate=validate.Range(1, 5))


class OpportunitySchema(Schema):
    id = fields.Integer(dump_only=True)
    customer_id = fields.Integer(required=True)
    name = fields.String(required=True)
    amount = fields.Decimal(required=True, as_string=True, metadata=MONEY)
    currency = fields.String(load_default="CNY")
    expected_close = fields.Date(load_default=None, allow_none=True)
    pipeline = fields.String(load_default="new_business")
    stage = fields.String(dump_only=True, allow_none=True)
    win_rate = fields.Integer(dump_only=True)
    win_rate_override = fields.Integer(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True)


class WinRateSchema(Schema):
    win_rate = fields.Integer(required=True, allow_none=True, validate=validate.Range(0, 100))


class QuoteLineSchema(Schema):
    product_id = fields.Integer(load_default=None, allow_none=True)
    description = fields.String(required=True)
    quantity = fields.Decimal(required=True, as_string=True, metadata=MONEY)
    unit_price = fields.Decimal(required=True, as_string=True, metadata=MONEY)
    line_total = fields.Decimal(dump_only=True, as_string=True, metadata=MONEY)


class QuoteSchema(Schema):
    id = fields.Integer(dump_only=True)
    number = fields.String(dump_only=True)
    opportunity_id = fields.Integer(required=True)
    status = fields.String(dump_only=True)
    discount_pct = fields.Decimal(load_default=0, as_string=True, metadata=MONEY)
    payment_days = fields.Integer(load_default=30)
    delivery_date = fields.Date(load_default=None, allow_none=True)
    subtotal = fields.Decimal(dump_only=True, as_string=True, metadata=MONEY)
    total = fields.Decimal(dump_only=True, as_string=True, metadata=MONEY)
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True)


class InstallmentSchema(Schema):
    id = fields.Integer()
    seq = fields.Integer()
    due_date = fields.Date()
    amount = fields.Decimal(as_string=True, metadata=MONEY)
    paid_amount = fields.Decimal(as_string=True, metadata=MONEY)
    status = fields.String()


class OrderSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    customer_id = fields.Integer()
    amount = fields.Decimal(as_string=True, metadata=MONEY)
    currency = fields.String()
    status = fields.String()
    signed_on = fields.Date()
    installments = fields.List(fields.Nested(InstallmentSchema))


class ReceiptSchema(Schema):
    amount = fields.Decimal(required=True, as_string=True, metadata=MONEY)
    received_on = fields.Date(required=True)
    reference = fields.String(load_default=None, allow_none=True)


class LeadSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    company = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    status = fields.String()
    status_reason = fields.String(allow_none=True)
    pool_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    customer_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    converted_at = fields.DateTime(allow_none=True)
    masked = fields.Boolean(metadata={"description": "contact details hidden until claimed"})


class NewLeadSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    pool_id = fields.Integer(required=True)
    company = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    email = fields.Email(load_default=None, allow_none=True)
    source = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))


class AssignSchema(Schema):
    user_id = fields.Integer(required=True)


class CloseLeadSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class ConvertLeadSchema(Schema):
    customer_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    contact_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    contact_title = fields.String(load_default="", validate=validate.Length(max=200))
    contact_buying_role = fields.String(
        required=True,
        validate=validate.OneOf(["decision_maker", "user", "technical_owner", "coach"]),
    )
    opportunity_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    amount = fields.Decimal(required=True, as_string=True, metadata=MONEY)
    currency = fields.String(load_default="CNY", validate=validate.Regexp(r"^[A-Z]{3}$"))
    expected_close = fields.Date(required=True)
    pipeline = fields.String(
        load_default="new_business", validate=validate.OneOf(["new_business", "renewal"])
    )


class PoolSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String(metadata={"description": "customer or lead"})
    territory_id = fields.Integer(allow_none=True)
    product_line = fields.String(allow_none=True)
    waiting = fields.Integer(metadata={"description": "unowned customers or leads in the pool"})


class PoolContactSchema(Schema):
    name = fields.String()
    title = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class PoolCustomerSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String()
    industry = fields.String(allow_none=True)
    territory_id = fields.Integer(allow_none=True)
    pool_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    masked = fields.Boolean()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    contacts = fields.List(fields.Nested(PoolContactSchema))


class ReleaseSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    pool_id = fields.Integer(load_default=None, allow_none=True)


class ActivitySchema(Schema):
    id = fields.Integer(dump_only=True)
    customer_id = fields.Integer(dump_only=True)
    opportunity_id = fields.Integer(load_default=None, allow_none=True)
    user_id = fields.Integer(dump_only=True)
    kind = fields.String(required=True, validate=validate.OneOf(["call", "visit", "email", "note"]))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(load_default=None, allow_none=True)
    happened_at = fields.DateTime(dump_only=True)
    next_followup_on = fields.Date(load_default=None, allow_none=True)


class DailyReportSchema(Schema):
    id = fields.Integer(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    user_name = fields.String(dump_only=True)
    day = fields.Date(dump_only=True)
    summary = fields.String(required=True, validate=validate.Length(min=1, max=10_000))
    plan = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))
