"""The OpenAPI 3 document of the API, built from the marshmallow schemas and the routes."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify
from marshmallow import Schema

from webapp.api import bp, schemas

# (method, path, summary, request schema, response schema, success status)
ROUTES: list[tuple[str, str, str, str | None, str | None, int]] = [
    ("get", "/processes", "List the newest version of each process", None, "Definition", 200),
    ("post", "/processes", "Deploy BPMN/DMN files (multipart 'files'; admins)", None, None, 201),
    ("post", "/instances", "Start a process instance", "StartInstance", "Instance", 201),
    ("get", "/instances/{instance_id}", "Show an instance", None, "Instance", 200),
    ("get", "/tasks", "List my open tasks", None, "Task", 200),
    ("get", "/tasks/{task_id}", "Show a task", None, "Task", 200),
    ("post", "/tasks/{task_id}/claim", "Claim a task", None, "Task", 200),
    (
        "post",
        "/tasks/{task_id}/complete",
        "Complete a task with form data",
        "CompleteTask",
        "Instance",
        200,
    ),
    ("post", "/customers", "Create a customer", "Customer", "Customer", 201),
    ("get", "/customers/{customer_id}", "Show a customer", None, "Customer", 200),
    ("post", "/customers/{customer_id}/contacts", "Add a contact", "Contact", "Contact", 201),
    ("post", "/opportunities", "Create an opportunity", "Opportunity", "Opportunity", 201),
    ("get", "/opportunities/{opportunity_id}", "Show an opportunity", None, "Opportunity", 200),
    (
        "put",
        "/opportunities/{opportunity_id}/win-rate",
        "Set or clear the win-rate override",
        "WinRate",
        "Opportunity",
        200,
    ),
    ("post", "/quotes", "Draft a quote", "Quote", "Quote", 201),
    ("get", "/quotes/{quote_id}", "Show a quote", None, "Quote", 200),
    ("post", "/quotes/{quote_id}/submit", "Submit a quote for approval", None, "Quote", 200),
    ("get", "/orders/{order_id}", "Show an order with installments", None, "Order", 200),
    ("post", "/orders/{order_id}/receipts", "Register a receipt", "Receipt", "Order", 201),
    ("get", "/leads", "List the leads I may see (mine, my teams', pool leads)", None, "Lead", 200),
    (
        "post",
        "/leads",
        "Capture a lead into a lead pool (marketing, managers)",
        "NewLead",
        "Lead",
        201,
    ),
    ("get", "/leads/{lead_id}", "Show a lead", None, "Lead", 200),
    ("post", "/leads/{lead_id}/claim", "Claim a waiting lead (reps)", None, "Lead", 200),
    ("post", "/leads/{lead_id}/assign", "Assign a waiting lead to a rep", "Assign", "Lead", 200),
    (
        "post",
        "/leads/{lead_id}/convert",
        "Convert a lead into a customer, contact and opportunity",
        "ConvertLead",
        "Lead",
        200,
    ),
    ("post", "/leads/{lead_id}/disqualify", "Disqualify a lead", "CloseLead", "Lead", 200),
    ("post", "/leads/{lead_id}/return", "Return a lead to its pool", "CloseLead", "Lead", 200),
    ("get", "/pools", "List the customer and lead pools", None, "Pool", 200),
    (
        "get",
        "/pools/{pool_id}/customers",
        "List a pool's waiting customers (masked)",
        None,
        "PoolCustomer",
        200,
    ),
    (
        "get",
        "/pools/{pool_id}/leads",
        "List a lead pool's waiting leads (masked)",
        None,
        "Lead",
        200,
    ),
    (
        "post",
        "/customers/{customer_id}/claim",
        "Claim a pool customer (reps)",
        None,
        "PoolCustomer",
        200,
    ),
    (
        "post",
        "/customers/{customer_id}/release",
        "Release a customer to a pool, with a reason",
        "Release",
        "PoolCustomer",
        200,
    ),
    ("get", "/activities", "List my latest activities", None, "Activity", 200),
    (
        "get",
        "/customers/{customer_id}/activities",
        "List a customer's activities",
        None,
        "Activity",
        200,
    ),
    (
        "post",
        "/customers/{customer_id}/activities",
        "Log a call, visit, e-mail or note",
        "Activity",
        "Activity",
        201,
    ),
    (
        "get",
        "/opportunities/{opportunity_id}/activities",
        "List an opportunity's activities",
        None,
        "Activity",
        200,
    ),
    (
        "post",
        "/opportunities/{opportunity_id}/activities",
        "Log an activity on an opportunity",
        "Activity",
        "Activity",
        201,
    ),
    ("get", "/reports/daily", "List the daily reports I may read", None, "DailyReport", 200),
    ("put", "/reports/daily", "Write my daily report for today", "DailyReport", "DailyReport", 200),
]
# Query parameters of the list routes: path -> (name, JSON type, description).
QUERY: dict[str, list[tuple[str, str, str]]] = {
    "/tasks": [("limit", "integer", "at most 200")],
    "/leads": [
        ("status", "string", "new, working, converted, disqualified or returned"),
        ("pool_id", "integer", "only this pool's leads"),
        ("limit", "integer", "1 to 200 (default 100)"),
    ],
    "/pools/{pool_id}/customers": [
        ("tier", "string", "A to E"),
        ("limit", "integer", "1 to 200 (default 100)"),
    ],
    "/pools/{pool_id}/leads": [("limit", "integer", "1 to 200 (default 100)")],
    "/activities": [("limit", "integer", "1 to 200 (default 100)")],
    "/customers/{customer_id}/activities": [("limit", "integer", "1 to 200 (default 100)")],
    "/reports/daily": [
        ("day", "string", "YYYY-MM-DD; all days when missing"),
        ("limit", "integer", "1 to 200 (default 100)"),
    ],
}
# Responses that are lists.
LISTS = {
    ("get", path)
    for path in (
        "/processes",
        "/tasks",
        "/leads",
        "/pools",
        "/pools/{pool_id}/customers",
        "/pools/{pool_id}/leads",
        "/activities",
        "/customers/{customer_id}/activities",
        "/opportunities/{opportunity_id}/activities",
        "/reports/daily",
    )
}

SCHEMAS: dict[str, type[Schema]] = {
    name: getattr(schemas, f"{name}Schema")
    for name in (
        "Error",
        "Definition",
        "StartInstance",
        "Task",
        "Instance",
        "CompleteTask",
        "Customer",
        "Contact",
        "Opportunity",
        "WinRate",
        "Quote",
        "Order",
        "Receipt",
        "Lead",
        "NewLead",
        "Assign",
        "ConvertLead",
        "CloseLead",
        "Pool",
        "PoolCustomer",
        "Release",
        "Activity",
        "DailyReport",
    )
}


def document(
    routes: list[tuple[str, str, str, str | None, str | None, int]],
    named_schemas: dict[str, type[Schema]] | None = None,
) -> None:
    """Add an area's routes (and the schemas they name) to the OpenAPI document."""
    ROUTES.extend(routes)
    SCHEMAS.update(named_schemas or {})


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Stagecraft API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    errors = {
        str(code): {"description": text, "content": {"application/json": {"schema": "Error"}}}
        for code, text in (
            (401, "missing or bad token"),
            (403, "not allowed"),
            (404, "not found (or not yours)"),
            (409, "changed meanwhile"),
            (422, "invalid input, with messages per field"),
        )
    }
    for method, path, summary, body, response, status in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "responses": dict(errors),
        }
        operation["responses"][str(status)] = {"description": "success"}
        if response:
            shape: Any = response
            if (method, path) in LISTS:
                shape = {"type": "array", "items": {"$ref": f"#/components/schemas/{response}"}}
            operation["responses"][str(status)]["content"] = {"application/json": {"schema": shape}}
        if body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
            for p in params
        ]
        if method == "get":
            parameters += [
                {"name": name, "in": "query", "description": text, "schema": {"type": kind}}
                for name, kind, text in QUERY.get(path, [])
            ]
        if parameters:
            operation["parameters"] = parameters
        spec.path(path=f"/api/v1{path}", operations={method: operation})
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Any:
    if "openapi" not in current_app.extensions:
        current_app.extensions["openapi"] = build_spec()
    return jsonify(current_app.extensions["openapi"])
