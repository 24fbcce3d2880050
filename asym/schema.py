"""The base of every typed configuration block (params.yaml, the model families)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Every block refuses keys it does not know: a typo is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
