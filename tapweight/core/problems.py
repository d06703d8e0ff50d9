"""The optimization levels of TapWeight as betty ``ImplicitProblem``s.

Each level only says what its loss is (:meth:`Level.level_loss`); betty owns the loops and the
level graph. The typed base class :class:`Level` owns the hooks betty finds by name
(``get_batch``, ``training_step``), so a misspelled hook cannot be skipped silently, and adds
what betty lacks: seeded corruption per step (finite-difference hypergradients evaluate a level
several times on one batch and must see the same masks and dropout each time), a NaN guard,
bf16 autocast on CUDA, pass counting for cost accounting, and state kept clean: only a level's
own descent step may move BatchNorm statistics (hypergradient re-evaluations and the validation
loss of the reweight level leave every buffer as it was).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from betty.configs import Config
from betty.problems import ImplicitProblem
from torch import Tensor, nn
from torch.func import functional_call

from tapweight.budget import pretrain_step_taken
from tapweight.data.batches import ResumableBatches
from tapweight.downstream.finetuning import ProximalKind, proximal_term
from tapweight.downstream.heads import TaskModel
from tapweight.errors import TrainingError
from tapweight.objectives.base import Objectives
from tapweight.pretrain import weighted_loss
from tapweight.training import buffers_kept, to_device

__all__ = [
    "Level",
    "ObjectiveLogits",
    "PretrainModel",
    "Reweight",
    "Pretrain",
    "Proximal",
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

    def __init__(self, encoder: nn.Module, objectives: Objectives) -> None:
        super().__init__()
        self.encoder, self.objectives = encoder, objectives

    def forward(self, batch) -> Tensor:
        """Each objective's loss on ``batch``, in the objectives' order."""
        return torch.stack([o.loss(self.encoder, batch) for o in self.objectives])


class Proximal:
    """lam · distance(θ_ft, θ_pt) between the finetuned and the pretrained encoder."""

    def __init__(
        self, finetuned: Callable[[], nn.Module], pretrained: Callable[[], nn.Module], lam: float,
        kind: ProximalKind, normalize: bool,
    ) -> None:  # fmt: skip
        self.finetuned, self.pretrained = finetuned, pretrained
        self.lam, self.kind, self.normalize = lam, kind, normalize

    def __call__(self) -> Tensor:
        return self.lam * proximal_term(
            self.finetuned(), self.pretrained(), self.normalize, self.kind
        )


class Level(ImplicitProblem):
    """Typed base of every TapWeight level.

    Args:
        name: betty problem name (also the attribute other levels reach it by).
        module, optimizer: what this level trains.
        batches: where its batches come from (resumable).
        settings: unroll/hypergradient config for betty.
        seed: base of the per-step corruption seed.
        autocast_bf16: run the loss under CUDA bf16 autocast.
        lr_step: (step size, gamma) of a StepLR schedule on this level, or None.
    """

    level_index = 0

    def __init__(
        self,
        name: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: ResumableBatches,
        settings: Config,
        seed: int,
        autocast_bf16: bool = False,
        lr_step: tuple[int, float] | None = None,
    ) -> None:
        scheduler = (
            torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step[0], gamma=lr_step[1])
            if lr_step
            else None
        )
        super().__init__(name, settings, module=module, optimizer=optimizer, scheduler=scheduler)
        self.batches = batches
        self.seed = seed
        self.autocast_bf16 = autocast_bf16
        self.passes = 0
        self.last_loss: dict[str, float] = {}
        self._descending = False

    def get_batch(self):
        return to_device(next(self.batches), self.device)

    def get_loss(self, batch):
        """betty's loss for this level's own descent step (re-evaluations skip this)."""
        self._descending = True
        try:
            return super().get_loss(batch)
        finally:
            self._descending = False

    def state_guard(self) -> AbstractContextManager:
        """Only the level's own descent step may move buffers (BatchNorm running statistics);
        hypergradient re-evaluations of the same batch leave them as they were."""
        return nullcontext() if self._descending else buffers_kept(self.module)

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """One pass of this level at its current step: the step's corruption seed (every
        evaluation of a step sees the same masks and dropout), the state guard, autocast."""
        devices = [torch.cuda.current_device()] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), self.state_guard():
            torch.manual_seed(self.seed * 1_000_003 + self.level_index * 7_919 + self._count)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast_bf16):
                yield
        self.passes += 1

    def training_step(self, batch) -> Tensor:
        with self.evaluation():
            loss = self.level_loss(batch)
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

    def objective_losses(self, batch, parameters: dict[str, Tensor]) -> Tensor:
        """Each objective's loss Lᵢ on ``batch`` with this step's corruption (the descent
        step's masks and dropout), at ``parameters`` (by name) in place of the module's own."""
        with self.evaluation():
            losses = functional_call(self.module, parameters, (batch,))
        return losses.float()

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        pretrain_step_taken()


class Finetune(Level):
    """Middle level: task loss + the proximal term against the pretraining encoder."""

    level_index = 2

    def __init__(self, *args, proximal: Proximal, **kwargs):
        super().__init__(*args, **kwargs)
        self.proximal = proximal

    def level_loss(self, batch) -> Tensor:
        model: TaskModel = self.module
        task = model.loss(batch)
        self.last_loss = {"task": task.item()}
        return task + self.proximal()


class JointModel(nn.Module):
    """TapWeight-BLO's single model: task model (encoder + head) plus the objectives' heads."""

    def __init__(self, task_model: TaskModel, objectives: Objectives) -> None:
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

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        pretrain_step_taken()


class Reweight(Level):
    """Top level: the downstream validation loss of the finetuned model, as a function of λ
    (plus the proximal term where the text reference adds it)."""

    level_index = 3

    def __init__(
        self, *args, downstream: Callable[[], TaskModel], proximal: Proximal | None = None,
        **kwargs,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.downstream, self.proximal = downstream, proximal

    def state_guard(self) -> AbstractContextManager:
        """Validation batches never move the finetuned model's BatchNorm statistics."""
        return buffers_kept(self.downstream())

    def level_loss(self, batch) -> Tensor:
        loss = self.downstream().loss(batch)
        self.last_loss = {"valid": loss.item()}
        return loss if self.proximal is None else loss + self.proximal()

    def backward(
        self, loss, params, paths, create_graph=False, retain_graph=True, allow_unused=True
    ) -> None:
        """betty's backward, except that paths sharing λ's structured link evaluate it once
        (``hypergradient.through_last_link_once``): the same sum, half the link's passes."""
        from tapweight.core import hypergradient

        if not (self._config.first_order and hypergradient.shares_last_link(paths)):
            super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)
            return
        grads = torch.autograd.grad(
            loss, params, create_graph=create_graph, retain_graph=True, allow_unused=allow_unused
        )
        self.set_grads(params, grads)
        sync = self.gradient_accumulation_boundary()
        implicit = hypergradient.through_last_link_once(loss, paths, sync)
        if not sync:
            self.set_grads(params, implicit)
