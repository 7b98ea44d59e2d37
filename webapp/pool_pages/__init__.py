"""The customer pool pages: claim, release, allocate, and the recycling rules with a preview."""

from __future__ import annotations

from webapp.pool_pages.routes import bp

__all__ = ["bp"]
