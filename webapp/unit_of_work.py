"""One commit per request: after a successful response, or a rollback otherwise."""

from __future__ import annotations

from flask import Flask, Response
from sqlalchemy.exc import IntegrityError, OperationalError

from webapp.extensions import db


def register_unit_of_work(app: Flask) -> None:
    @app.after_request
    def commit(response: Response) -> Response:
        if response.status_code >= 400:
            db.session.rollback()
            return response
        try:
            db.session.commit()
        except (IntegrityError, OperationalError):
            db.session.rollback()
            return Response(
                "Someone else changed this at the same time. Reload and try again.",
                status=409,
                mimetype="text/plain",
            )
        return response

    @app.teardown_request
    def rollback_on_error(error: BaseException | None) -> None:
        if error is not None:
            db.session.rollback()
