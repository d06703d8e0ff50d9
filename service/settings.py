"""Service settings, read from the environment once at start-up (twelve-factor style)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def _split(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


class Settings(BaseModel):
    """Everything the API process needs; ``from_env`` documents the variable of each field."""

    model_config = ConfigDict(frozen=True)

    database_url: str = "sqlite:///tapweight-service.db"
    ray_address: str | None = Field(
        None, description="Ray cluster (dashboard URL or GCS address); unset: a local head"
    )
    api_tokens: tuple[str, ...] = ()
    runs_dir: Path = Path("runs/service")
    data_dir: Path | None = None
    cache_dir: Path | None = None
    offline: bool = False
    executor: Literal["ray", "none"] = Field(
        "ray", description="'none' is store-only mode for load tests: jobs are never executed"
    )
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    cors_origins: tuple[str, ...] = ()
    poll_interval_s: float = Field(1.0, gt=0)
    max_requeues: int = Field(3, ge=0, description="resubmissions of a job Ray lost")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        def get(name: str) -> str | None:
            return environ.get(name) or None

        values = {
            "database_url": get("DATABASE_URL"),
            "ray_address": get("RAY_ADDRESS"),
            "api_tokens": _split(get("TAPWEIGHT_API_TOKENS")),
            "runs_dir": get("TAPWEIGHT_RUNS_DIR"),
            "data_dir": get("TAPWEIGHT_DATA_DIR"),
            "cache_dir": get("TAPWEIGHT_CACHE_DIR"),
            "offline": get("TAPWEIGHT_OFFLINE") not in (None, "0", "false"),
            "executor": get("TAPWEIGHT_EXECUTOR"),
            "max_body_bytes": get("TAPWEIGHT_MAX_BODY_BYTES"),
            "cors_origins": _split(get("TAPWEIGHT_CORS_ORIGINS")),
            "poll_interval_s": get("TAPWEIGHT_POLL_INTERVAL_S"),
            "max_requeues": get("TAPWEIGHT_MAX_REQUEUES"),
        }
        return cls.model_validate({k: v for k, v in values.items() if v is not None})

    def job_env(self) -> dict[str, str]:
        """Variables every Ray job gets: where data lives and whether it may download."""
        env = {}
        if self.data_dir is not None:
            env["TAPWEIGHT_DATA_DIR"] = str(self.data_dir.resolve())
        if self.cache_dir is not None:
            env["TAPWEIGHT_CACHE_DIR"] = str(self.cache_dir.resolve())
        if self.offline:
            env["TAPWEIGHT_OFFLINE"] = "1"
            env["HF_HUB_OFFLINE"] = "1"
        return env
