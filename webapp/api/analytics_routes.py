"""API routes for analytics (/api/v1/analytics/...); documented with `openapi.document`."""

from __future__ import annotations
