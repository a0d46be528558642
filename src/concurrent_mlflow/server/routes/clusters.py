"""/api/v1/clusters (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/clusters", tags=["clusters"])
