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
]

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
            operation["responses"][str(status)]["content"] = {
                "application/json": {"schema": response}
            }
        if body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            operation["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
                for p in params
            ]
        spec.path(path=f"/api/v1{path}", operations={method: operation})
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Any:
    if "openapi" not in current_app.extensions:
        current_app.extensions["openapi"] = build_spec()
    return jsonify(current_app.extensions["openapi"])
