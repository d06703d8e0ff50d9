"""TapWeight settings, with the defaults of the authors' code (github ruz048/TapWeight).

:meth:`TapWeightConfig.for_task` is the one place the per-domain and per-task defaults live, and
:meth:`TapWeightConfig.for_run` the one place a run's length sets how often it records.
Molecules follow ``molreweight/reweight.py`` and its launch scripts ``reweight_cls.sh`` /
``reweight_reg.sh``; text follows ``nlureweight/main_roberta.py``, ``nlureweight/utils.py`` and
``nlureweight/main.sh``. Each default below names the line it comes from; where we differ, the
field says so. Runs are shorter than the reference's 10,000 (molecules) or 20,000 (text)
iterations, so a CPU run finishes in minutes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tapweight.errors import ConfigError, describe_validation_error

__all__ = ["TapWeightConfig", "HYPERGRADIENTS", "RESUMABLE_FIELDS"]

HYPERGRADIENTS = ("darts", "exact", "neumann", "cg", "sama")
RESUMABLE_FIELDS = frozenset({"iterations", "progress", "checkpoint_every", "valid_every"})
"""Fields a resumed run may change; any other difference refuses the resume."""


class TapWeightConfig(BaseModel):
    """Everything that decides a TapWeight run.

    Example:
        >>> TapWeightConfig.for_task("molecule", "regression", iterations=200).lam
        0.01
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mode: Literal["tlo", "blo"] = Field(
        "tlo", description="tlo: three levels (the paper); blo: the bi-level ablation TapWeight-BLO"
    )
    iterations: int = Field(300, ge=1, description="continued-pretraining steps (reference: 10k)")
    valid_every: int = Field(25, ge=1, description="record the trajectory every N iterations")
    checkpoint_every: int = Field(25, ge=1)
    hypergradient: str = "darts"
    structured_hypergradient: bool = Field(
        True,
        description="darts/exact take the links whose structure makes them cheap from "
        "tapweight.core.hypergradient (the proximal link in closed form, λ's link by forward "
        "passes only); False: betty's generic functions throughout",
    )
    unroll_steps: int = Field(1, ge=1, description="pretrain steps per finetune step")
    hypergradient_every: int = Field(1, ge=1, description="finetune steps per λ update")
    finetune_warmup_steps: int | None = Field(
        None, ge=0,
        description="finetune steps that train the task head before the first λ update (None: "
        "a quarter of the iterations, at most 100). Ours: the reference has none, but runs 10k "
        "iterations; in a short run λ would otherwise follow a random head's gradient",
    )  # fmt: skip
    lam: float = Field(
        1e-3,
        description="proximal weight tying finetuning to pretraining (reweight_cls.sh: 1e-3; "
        "regression keeps reweight.py:124's 1e-2; text utils.py:333: 1)",
    )
    proximal: Literal["l2", "l2_embeddings_l1_encoder"] = Field(
        "l2",
        description="l2: Σ‖θ_ft − θ_pt‖² over the encoder (reweight.py:432-439); "
        "l2_embeddings_l1_encoder: L2 on the embeddings plus L1 on the encoder layers "
        "(main_roberta.py:427-440)",
    )
    prox_normalize: bool = Field(
        False, description="divide the proximal term by parameter count (main_roberta.py:440)"
    )
    reweight_includes_proximal: bool = Field(
        False,
        description="the upper level's loss adds the proximal term and λ also gets its direct "
        "gradient through the pretrained encoder (main_roberta.py:451, l2u at :542)",
    )
    pretrain_optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    pretrain_lr: float = Field(0.05, gt=0, description="reweight_cls.sh / reweight_reg.sh")
    finetune_optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    finetune_lr: float = Field(
        0.01, gt=0, description="reweight_cls.sh: 0.01; reweight_reg.sh: 0.001"
    )
    reweight_optimizer: Literal["sgd", "adam"] = "sgd"
    reweight_lr: float = Field(200.0, gt=0, description="reweight_cls.sh: 200; reweight_reg.sh: 10")
    momentum: float = Field(
        0.9, ge=0, lt=1,
        description="SGD momentum of the pretrain and finetune levels (reweight.py:92, "
        ":543-556); the reweight level's SGD has none (:558)",
    )  # fmt: skip
    weight_decay: float = Field(
        1e-5, ge=0,
        description="of the pretrain and finetune levels (reweight.py:61, 10**-5); the text "
        "reference also decays λ (main.sh: 0.001 on all three, main_roberta.py:525-527)",
    )  # fmt: skip
    reweight_weight_decay: float = Field(0.0, ge=0, description="reweight.py:558: none")
    lr_step_size: int | None = Field(
        100, ge=1,
        description="StepLR on every level (reweight.py:127-128, :393-396, :440-443, :485-488); "
        "None: constant learning rates",
    )  # fmt: skip
    lr_gamma: float = Field(0.9, gt=0, le=1)
    adam_eps: float = Field(1e-8, gt=0, description="Adam's ε on every Adam level (torch default)")
    darts_alpha: float = Field(0.01, gt=0, description="finite-difference radius of darts")
    pretrain_batch_size: int = Field(64, ge=2, description="reference: 1536 (cls), 1024 (reg)")
    finetune_batch_size: int = Field(32, ge=2, description="reference: 64 (reweight.py:90)")
    valid_batch_size: int = Field(64, ge=2, description="reweight.py:91")
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0
    deterministic: bool = Field(
        False, description="one CPU thread, so a run (and a resumed run) is bitwise repeatable"
    )
    progress: bool = True

    @property
    def warmup_steps(self) -> int:
        """Finetune steps before the first λ update."""
        if self.finetune_warmup_steps is not None:
            return self.finetune_warmup_steps
        return min(100, self.iterations // 4)

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
            raise ConfigError(
                f"invalid TapWeight config: {describe_validation_error(error)}"
            ) from None

    @classmethod
    def for_task(cls, domain: str, task_type: str, **overrides) -> TapWeightConfig:
        """The reference's settings for a domain (``molecule``/``text``) and task type; every
        setting stays overridable."""
        if domain == "text":
            defaults: dict = dict(
                pretrain_optimizer="adam",  # main_roberta.py:525-527: Adam on every level
                finetune_optimizer="adam",
                reweight_optimizer="adam",
                pretrain_lr=2e-5,  # utils.py:328-330
                finetune_lr=2e-5,
                reweight_lr=2e-3,
                weight_decay=1e-3,  # main.sh --weight_decay 0.001, on every level
                reweight_weight_decay=1e-3,
                lam=1.0,  # utils.py:333
                proximal="l2_embeddings_l1_encoder",
                prox_normalize=True,
                reweight_includes_proximal=True,
                lr_step_size=None,  # ours: the reference's linear warm-up/decay is not kept
                pretrain_batch_size=16,  # reference: 32 (main.sh)
                finetune_batch_size=16,
                valid_batch_size=32,
            )
        elif task_type == "regression":
            defaults = dict(lam=1e-2, finetune_lr=1e-3, reweight_lr=10.0)  # reweight_reg.sh
        else:
            defaults = {}  # the field defaults are reweight_cls.sh's
        return cls.parse(**{**defaults, **overrides})

    @classmethod
    def for_run(
        cls,
        domain: str,
        task_type: str,
        *,
        iterations: int,
        record_every: int | None = None,
        **overrides: Any,
    ) -> TapWeightConfig:
        """:meth:`for_task` for a run of ``iterations`` steps that records its trajectory and
        writes its checkpoint every ``record_every`` steps (None: ten times per run), so the
        CLI, the demo and the strategy size a run alike; ``overrides`` win over all of it.

        Example:
            >>> TapWeightConfig.for_run("molecule", "classification", iterations=200).valid_every
            20
        """
        every = record_every if record_every is not None else max(1, iterations // 10)
        run = {"iterations": iterations, "valid_every": every, "checkpoint_every": every}
        return cls.for_task(domain, task_type, **{**run, **overrides})
