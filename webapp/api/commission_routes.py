"""API routes for commission (/api/v1/commission/...); documented with `openapi.document`."""

from __future__ import annotations
