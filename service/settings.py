"""Service settings: environment variables (prefix ``TAPWEIGHT_``), then a ``.env`` file, read
once at start-up (twelve-factor style, the pydantic-settings way).

A secret (the API tokens, the database URL, which holds a password) may instead come from a
file named by ``<VARIABLE>_FILE``, as Docker and Kubernetes secrets are mounted, so that it
never sits in the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from harness.spec import SpecLimits
from tapweight.errors import ConfigError

# Comma-separated in a variable, and may be one per line in a *_FILE (not JSON).
CommaSeparated = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Everything the API process needs; each field's variable is ``Settings.variable(name)``.

    Example:
        ``TAPWEIGHT_API_TOKENS=a,b TAPWEIGHT_EXECUTOR=none tapweight serve``
    """

    model_config = SettingsConfigDict(
        env_prefix="TAPWEIGHT_",
        env_file=".env",
        env_ignore_empty=True,  # docker-compose passes unset optional variables as ""
        extra="ignore",  # the same .env may hold docker-compose's own variables
        frozen=True,
        validate_by_name=True,
    )
    secrets: ClassVar[tuple[str, ...]] = ("database_url", "api_tokens")

    # Two names predate the prefix and are the ecosystem's own (SQLAlchemy, Ray).
    database_url: str = Field(
        default="sqlite:///tapweight-service.db",
        validation_alias="DATABASE_URL",
        description="SQLite (WAL) or `postgresql+psycopg://…`; Alembic migrates it at start-up",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias="RAY_ADDRESS",
        description="Ray cluster's dashboard URL (`http://head:8265`); unset: a local head",
    )
    api_tokens: CommaSeparated = Field(
        default=(),
        description="bearer tokens, comma-separated; each sees only its own jobs; required",
    )
    runs_dir: Path = Field(
        default=Path("runs/service"), description="job run directories, shared with the Ray nodes"
    )
    data_dir: Path | None = Field(
        default=None, description="shared data; spec paths must resolve inside it"
    )
    uploads_dir: Path | None = Field(
        default=None,
        description="uploaded datasets, shared with the Ray nodes; unset: `datasets/` in the "
        "runs directory",
    )
    max_upload_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest dataset upload (POST /datasets)"
    )
    cache_dir: Path | None = Field(default=None, description="download cache the jobs use")
    offline: bool = Field(
        default=False, description="jobs never download (also sets HF_HUB_OFFLINE)"
    )
    executor: Literal["ray", "none"] = Field(
        default="ray", description="`none`: store-only mode for load tests, jobs never run"
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="largest request body")
    worker_threads: int = Field(
        default=8,
        ge=1,
        description="threads for the requests' database and file work; more only contend for "
        "the one core the API's Python runs on",
    )
    cors_origins: CommaSeparated = Field(
        default=(), description="CORS origins, comma-separated; unset: CORS off"
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="seconds between polls of Ray and of event streams"
    )
    max_requeues: int = Field(
        default=3,
        ge=0,
        description="automatic resubmissions of a job whose driver was killed or that Ray lost, "
        "counted since it was submitted or last resumed on request",
    )
    max_seeds: int = Field(default=SpecLimits.seeds, ge=1, description="seeds one spec may list")
    max_trials: int = Field(
        default=SpecLimits.trials,
        ge=1,
        description="trials (datasets × strategies × seeds) per job",
    )
    max_trial_cpus: float = Field(
        default=SpecLimits.cpu, gt=0, description="CPUs one trial may ask for"
    )
    max_trial_gpus: float = Field(
        default=SpecLimits.gpu, ge=0, description="GPUs one trial may ask for"
    )

    @field_validator("api_tokens", "cors_origins", mode="before")
    @classmethod
    def _split(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return tuple(part.strip() for part in re.split(r"[,\n]", raw) if part.strip())
        return raw

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field ``name``."""
        field = cls.model_fields[name]
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        return f"{cls.model_config['env_prefix']}{name}".upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env, dotenv = (
            cast(EnvSettingsSource, env_settings),
            cast(DotEnvSettingsSource, dotenv_settings),
        )
        return init_settings, env, dotenv, SecretFiles(settings_cls, env, dotenv)

    def uploads_root(self) -> Path:
        """Where uploads are kept (absolute, as a Ray node reads the spec's paths)."""
        return (self.uploads_dir or self.runs_dir / "datasets").resolve()

    def spec_limits(self) -> SpecLimits:
        """What one submitted spec may ask for."""
        return SpecLimits(
            seeds=self.max_seeds,
            trials=self.max_trials,
            cpu=self.max_trial_cpus,
            gpu=self.max_trial_gpus,
        )

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


class SecretFiles(PydanticBaseSettingsSource):
    """``<VARIABLE>_FILE=path``, from the environment or ``.env``, for each of
    ``Settings.secrets``: the value is the file's content."""

    def __init__(
        self, settings_cls: type[BaseSettings], env: EnvSettingsSource, dotenv: DotEnvSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self.variables = {**dotenv.env_vars, **env.env_vars}  # keys lower-case, as both keep them

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = Settings.variable(field_name)
        path = self.variables.get(f"{variable}_file".lower())
        if path is None:
            return None, field_name, False
        if self.variables.get(variable.lower()) is not None:
            raise ConfigError(f"both {variable} and {variable}_FILE are set; keep one")
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as error:
            raise ConfigError(f"{variable}_FILE={path}: {error.strerror}") from None

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name in Settings.secrets:
            value, key, _ = self.get_field_value(Settings.model_fields[name], name)
            if value is not None:
                values[key] = value
        return values


def load_settings() -> Settings:
    """The settings of this process; a bad value is one :class:`ConfigError` line naming its
    variable, so that `tapweight serve` says what to fix instead of printing a traceback."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(f"invalid service settings: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    variables = {}  # a field name or an alias (lower-case) -> its variable
    for name in Settings.model_fields:
        variables[name] = variables[Settings.variable(name).lower()] = Settings.variable(name)
    return "; ".join(
        f"{variables.get(str(p['loc'][0]).lower(), p['loc'][0])}: {p['msg']} (got {p['input']!r})"
        for p in error.errors()
    )
