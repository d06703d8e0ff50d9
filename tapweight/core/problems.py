"""The optimization levels of TapWeight as betty ``ImplicitProblem``s.

Each level only says what its loss is (:meth:`Level.level_loss`); betty owns the loops and the
level graph. The typed base class :class:`Level` owns the hooks betty finds by name
(``get_batch``, ``training_step``), so a misspelled hook cannot be skipped silently, and adds
what betty lacks: seeded corruption per step (finite-difference hypergradients evaluate a level
several times on one batch and must see the same masks and dropout each time), a NaN guard,
bf16 autocast on CUDA, and pass counting for cost accounting.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch
from betty.configs import Config
from betty.problems import ImplicitProblem
from torch import Tensor, nn

from tapweight.data.batches import ResumableBatches
from tapweight.downstream.finetuning import proximal_term
from tapweight.downstream.heads import TaskModel
from tapweight.errors import TrainingError
from tapweight.pretrain import weighted_loss
from tapweight.training import to_device

__all__ = [
    "Level",
    "ObjectiveLogits",
    "PretrainModel",
    "Reweight",
    "Pretrain",
    "Finetune",
    "Joint",
    "JointModel",
]


class ObjectiveLogits(nn.Module):
    """λ = softmax(logits); logits start equal (uniform weights)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(count))

    def weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=0)


class PretrainModel(nn.Module):
    """The encoder under continued pretraining together with its objectives' heads."""

    def __init__(self, encoder: nn.Module, objectives: nn.ModuleList) -> None:
        super().__init__()
        self.encoder, self.objectives = encoder, objectives


class Level(ImplicitProblem):
    """Typed base of every TapWeight level.

    Args:
        name: betty problem name (also the attribute other levels reach it by).
        module, optimizer: what this level trains.
        batches: where its batches come from (resumable).
        settings: unroll/hypergradient config for betty.
        seed: base of the per-step corruption seed.
        autocast_bf16: run the loss under CUDA bf16 autocast.
    """

    level_index = 0

    def __init__(
        self,
        name: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: ResumableBatches | None,
        settings: Config,
        seed: int,
        autocast_bf16: bool = False,
    ) -> None:
        super().__init__(name, settings, module=module, optimizer=optimizer)
        self.batches = batches
        self.seed = seed
        self.autocast_bf16 = autocast_bf16
        self.passes = 0
        self.last_loss: dict[str, float] = {}

    def get_batch(self):
        return to_device(next(self.batches), self.device)

    def training_step(self, batch) -> Tensor:
        devices = [torch.cuda.current_device()] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + self.level_index * 7_919 + self._count)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast_bf16):
                loss = self.level_loss(batch)
        self.passes += 1
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the {self.name} loss became {loss.item()} at its step {self._count}; lower the "
                f"{self.name} learning rate"
            )
        return loss.float()

    @abstractmethod
    def level_loss(self, batch) -> Tensor:
        """This level's loss on ``batch``."""


class Pretrain(Level):
    """Bottom level: continued pretraining on Σ λᵢ·Lᵢ, λ read from the reweight level."""

    level_index = 1

    def __init__(self, *args, weights: Callable[[], Tensor], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.objective_weights = weights

    def level_loss(self, batch) -> Tensor:
        model: PretrainModel = self.module
        loss, parts = weighted_loss(
            model.encoder, model.objectives, self.objective_weights(), batch
        )
        self.last_loss = parts
        return loss


class Finetune(Level):
    """Middle level: task loss + lam·‖θ_ft − θ_pt‖² against the pretraining encoder."""

    level_index = 2

    def __init__(
        self, *args, reference: Callable[[], nn.Module], lam: float, normalize: bool, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.reference, self.lam, self.normalize = reference, lam, normalize

    def level_loss(self, batch) -> Tensor:
        model: TaskModel = self.module
        task = model.loss(batch)
        self.last_loss = {"task": task.item()}
        return task + self.lam * proximal_term(model.encoder, self.reference(), self.normalize)


class JointModel(nn.Module):
    """TapWeight-BLO's single model: task model (encoder + head) plus the objectives' heads."""

    def __init__(self, task_model: TaskModel, objectives: nn.ModuleList) -> None:
        super().__init__()
        self.task_model, self.objectives = task_model, objectives


class Joint(Level):
    """TapWeight-BLO's lower level: one model on Σ λᵢ·Lᵢ (unlabeled) + task loss (train)."""

    level_index = 1

    def __init__(
        self, *args, weights: Callable[[], Tensor], task_batches: ResumableBatches, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.objective_weights, self.task_batches = weights, task_batches

    def get_batch(self):
        unlabeled = to_device(next(self.batches), self.device)
        return unlabeled, to_device(next(self.task_batches), self.device)

    def level_loss(self, batch) -> Tensor:
        unlabeled, labeled = batch
        model: JointModel = self.module
        aux, parts = weighted_loss(
            model.task_model.encoder, model.objectives, self.objective_weights(), unlabeled
        )
        task = model.task_model.loss(labeled)
        self.last_loss = {**parts, "task": task.item()}
        return aux + task


class Reweight(Level):
    """Top level: the downstream validation loss of the finetuned model, as a function of λ."""

    level_index = 3

    def __init__(self, *args, downstream: Callable[[], TaskModel], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.downstream = downstream

    def level_loss(self, batch) -> Tensor:
        loss = self.downstream().loss(batch)
        self.last_loss = {"valid": loss.item()}
        return loss
