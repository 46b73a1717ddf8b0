"""The base of every read-side row: frozen, strict about unknown fields, JSON-ready."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReadModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
