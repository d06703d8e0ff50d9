"""TapWeight seen as one weighting strategy among others (the harness treats all alike)."""

from __future__ import annotations

from typing import Any

from baselines.base import Budget, ProgressCallback, Strategy
from tapweight.components import Components
from tapweight.core import TapWeight, TapWeightConfig
from tapweight.core.checkpoint import load_checkpoint
from tapweight.errors import ConfigError
from tapweight.result import WeightingResult

__all__ = ["TapWeightStrategy"]


class TapWeightStrategy(Strategy):
    """λ learned by three-level optimization on the validation loss's hypergradient.

    Runs :class:`~tapweight.core.TapWeight` for ``budget.total_pretrain_steps`` iterations (one
    continued-pretraining step each), the budget every strategy's search gets.

    Extra keyword settings go to :class:`~tapweight.core.TapWeightConfig` (``lam``,
    ``hypergradient``, ``mode="blo"`` for the bi-level ablation, ...) over the reference's
    defaults for the domain and task type (:meth:`~tapweight.core.TapWeightConfig.for_run`);
    ``iterations`` is the budget's, so it is refused here.
    With ``checkpoint_dir`` the run checkpoints every tenth of its iterations there and a later
    run with the same directory continues from it.
    """

    name = "tapweight"
    requires_validation = True
    resumable = True

    def __init__(
        self, *, seed: int = 0, checkpoint_dir: str | None = None, **settings: Any
    ) -> None:
        super().__init__(seed=seed)
        if "iterations" in settings:
            raise ConfigError(
                "TapWeight runs the budget's total_pretrain_steps as its iterations, the steps "
                "every strategy gets; set budget.total_pretrain_steps instead of iterations"
            )
        self.checkpoint_dir = checkpoint_dir
        self.settings = settings
        TapWeightConfig.parse(**settings)  # refuse bad settings now, not after data loading

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, settings={self.settings})"

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return 1

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        run: dict[str, Any] = {
            "pretrain_batch_size": budget.pretrain.batch_size,
            "finetune_batch_size": budget.finetune.batch_size,
            "device": budget.pretrain.device,
            "seed": self.seed,
            "progress": budget.pretrain.progress,
        }
        config = TapWeightConfig.for_run(
            parts.domain,
            parts.task.task_type,
            iterations=budget.total_pretrain_steps,
            **(run | self.settings),
        )
        runner = TapWeight(
            parts.encoder, parts.objectives, parts.corpus, parts.task, config,
            parts.corpus_collate, checkpoint_dir=self.checkpoint_dir, callback=callback,
        )  # fmt: skip
        path = runner.checkpoint_path
        if path is not None and path.is_file():
            if load_checkpoint(path)["step"] >= config.iterations:
                path.unlink()  # a finished run whose result was lost: run it again
        return runner.run(resume=path is not None)
