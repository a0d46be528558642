"""/api/v1/schedules (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/schedules", tags=["schedules"])
