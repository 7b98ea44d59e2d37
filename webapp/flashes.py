"""Keep the session cookie small: only the latest flashed messages wait to be shown.

A message flashed by a form post is shown by the page the browser goes to next. A client that
posts again and again without loading a page (a script, a double click, a form in several
tabs) would otherwise pile messages up in the signed session cookie, which grows with each one,
is parsed and re-signed on every request, and past 4 KB is dropped by the browser, signing the
user out.
"""

from __future__ import annotations

from flask import Flask, Response, session

MAX_WAITING = 3


def register_flash_limit(app: Flask) -> None:
    @app.after_request
    def keep_latest_flashes(response: Response) -> Response:
        waiting = session.get("_flashes")
        if waiting and len(waiting) > MAX_WAITING:
            session["_flashes"] = waiting[-MAX_WAITING:]
        return response
