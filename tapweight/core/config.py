"""TapWeight settings.

Defaults follow the paper's molecular runs (SGD, pretrain lr 0.05, finetune lr 0.01, proximal
weight 1e-3..1e-2, λ lr 200 for classification / 10 for regression) with fewer iterations, so a
CPU run finishes in minutes; :meth:`TapWeightConfig.for_text` gives the paper's text settings
(Adam 2e-5, λ lr 2e-3, proximal term normalized by parameter count).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tapweight.errors import ConfigError

__all__ = ["TapWeightConfig", "HYPERGRADIENTS", "RESUMABLE_FIELDS"]

HYPERGRADIENTS = ("darts", "exact", "neumann", "cg", "sama")
RESUMABLE_FIELDS = frozenset({"iterations", "progress", "checkpoint_every", "valid_every"})
"""Fields a resumed run may change; any other difference refuses the resume."""


class TapWeightConfig(BaseModel):
    """Everything that decides a TapWeight run.

    Example:
        >>> TapWeightConfig(iterations=200, hypergradient="exact").lam
        0.005
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["tlo", "blo"] = Field(
        "tlo", description="tlo: three levels (the paper); blo: the bi-level ablation TapWeight-BLO"
    )
    iterations: int = Field(300, ge=1)
    valid_every: int = Field(25, ge=1, description="record the trajectory every N iterations")
    checkpoint_every: int = Field(25, ge=1)
    hypergradient: str = "darts"
    unroll_steps: int = Field(1, ge=1, description="pretrain steps per finetune step")
    hypergradient_every: int = Field(1, ge=1, description="finetune steps per λ update")
    lam: float = Field(5e-3, description="proximal weight tying finetuning to pretraining")
    prox_normalize: bool = Field(False, description="divide the proximal term by parameter count")
    pretrain_optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    pretrain_lr: float = Field(0.05, gt=0)
    finetune_optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    finetune_lr: float = Field(0.01, gt=0)
    reweight_optimizer: Literal["sgd", "adam"] = "sgd"
    reweight_lr: float = Field(200.0, gt=0)
    darts_alpha: float = Field(0.01, gt=0, description="finite-difference radius of darts")
    pretrain_batch_size: int = Field(64, ge=2)
    finetune_batch_size: int = Field(32, ge=2)
    valid_batch_size: int = Field(64, ge=2)
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0
    deterministic: bool = Field(
        False, description="one CPU thread, so a run (and a resumed run) is bitwise repeatable"
    )
    progress: bool = True

    @field_validator("hypergradient")
    @classmethod
    def _known_hypergradient(cls, value: str) -> str:
        if value not in HYPERGRADIENTS:
            raise ConfigError(
                f"unknown hypergradient type {value!r}; choose one of {', '.join(HYPERGRADIENTS)}"
            )
        return value

    @field_validator("lam")
    @classmethod
    def _positive_lam(cls, value: float) -> float:
        if not value > 0:
            raise ConfigError(
                f"lam must be > 0, got {value}: the proximal term is the only link between the "
                "finetuned model and the pretrained encoder, so with lam = 0 the hypergradient "
                "with respect to the objective weights is exactly zero and λ never moves"
            )
        return value

    @model_validator(mode="after")
    def _bf16_needs_cuda(self) -> TapWeightConfig:
        if self.precision == "bf16" and not self.device.startswith("cuda"):
            raise ConfigError(
                "precision bf16 uses CUDA autocast and needs device cuda; use fp32 on the CPU"
            )
        return self

    @classmethod
    def parse(cls, **settings) -> TapWeightConfig:
        """Validate ``settings``; errors become one :class:`ConfigError` naming each field."""
        try:
            return cls(**settings)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'config'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid TapWeight config: {problems}") from None

    @classmethod
    def for_text(cls, **overrides) -> TapWeightConfig:
        """The paper's text-domain settings (Adam 2e-5, λ lr 2e-3, normalized proximal term)."""
        settings = dict(
            pretrain_optimizer="adamw",
            pretrain_lr=2e-5,
            finetune_optimizer="adamw",
            finetune_lr=2e-5,
            reweight_optimizer="adam",
            reweight_lr=2e-3,
            prox_normalize=True,
            pretrain_batch_size=16,
            finetune_batch_size=16,
            valid_batch_size=32,
        )
        return cls.parse(**{**settings, **overrides})
