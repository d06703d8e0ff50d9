"""MOMETAS: a meta-learned sampler over pretraining objectives (Wu et al., EMNLP 2022).

Instead of mixing losses, every step trains on ONE objective drawn from a softmax policy. Every
``update_every`` steps the policy is rewarded by how much the objectives' losses on held-out
unlabeled batches dropped since the last update, and updated with REINFORCE plus an entropy bonus
(public code: gingasan/mometas). It reads no labels, so it is a label-free baseline; its weights
are the final sampling probabilities.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from baselines.base import Budget, ProgressCallback, Strategy
from tapweight.components import Components
from tapweight.data.batches import ResumableBatches
from tapweight.errors import ConfigError
from tapweight.pretrain import pretrain_descend
from tapweight.result import Cost, TrajectoryPoint, WeightingResult
from tapweight.training import to_device

__all__ = ["Mometas"]

SETTINGS = ("update_every", "entropy_coef", "policy_lr", "heldout_batches", "min_relative_drop")
HELDOUT_SEED = 12345
"""Seeds the held-out batches' corruption (masking...) so two measurements differ only by the
encoder, not by the random corruption they drew."""


class _Policy:
    """Softmax over objectives; remembers what it sampled since its last update (the rollout)."""

    def __init__(self, count: int, lr: float, entropy_coef: float, seed: int) -> None:
        self.logits = torch.zeros(count, requires_grad=True)  # equal logits: uniform start
        self.optimizer = torch.optim.SGD([self.logits], lr=lr)
        self.generator = torch.Generator().manual_seed(seed)  # own RNG: objectives use the global
        self.entropy_coef = entropy_coef
        self.rollout: list[int] = []

    @property
    def probs(self) -> list[float]:
        return torch.softmax(self.logits.detach().double(), 0).tolist()

    def sample(self) -> int:
        probs = torch.softmax(self.logits.detach(), 0)
        self.rollout.append(int(torch.multinomial(probs, 1, generator=self.generator)))
        return self.rollout[-1]

    def update(self, reward: float) -> None:
        """REINFORCE with the rollout's one shared reward, plus an entropy bonus against collapse.

        The log-probabilities are summed over the rollout as in the public code: the paper's
        ``policy_lr`` and ``entropy_coef`` are calibrated to that scale (a mean would shrink the
        reward term ``update_every``-fold and let the entropy bonus pin the policy to uniform).
        """
        log_probs = torch.log_softmax(self.logits, 0)
        entropy = -(log_probs.exp() * log_probs).sum()
        loss = -reward * log_probs[self.rollout].sum() - self.entropy_coef * entropy
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.rollout = []


class Mometas(Strategy):
    """Objective sampling policy trained with REINFORCE on held-out loss drops."""

    name = "mometas"
    requires_validation = False

    def __init__(
        self,
        *,
        seed: int = 0,
        update_every: int = 100,
        entropy_coef: float = 2.0,
        policy_lr: float = 0.1,
        heldout_batches: int = 2,
        min_relative_drop: float = 1e-3,
    ) -> None:
        super().__init__(seed=seed)
        limits = {
            "update_every": (update_every, update_every >= 1, ">= 1"),
            "entropy_coef": (entropy_coef, entropy_coef >= 0, ">= 0"),
            "policy_lr": (policy_lr, policy_lr > 0, "> 0"),
            "heldout_batches": (heldout_batches, heldout_batches >= 1, ">= 1"),
            "min_relative_drop": (min_relative_drop, min_relative_drop >= 0, ">= 0"),
        }
        for field, (value, ok, rule) in limits.items():
            if not ok:
                raise ConfigError(f"mometas {field} must be {rule}, got {value!r}")
        self.update_every, self.entropy_coef, self.policy_lr = update_every, entropy_coef, policy_lr
        self.heldout_batches, self.min_relative_drop = heldout_batches, min_relative_drop

    @property
    def settings(self) -> dict[str, float | int]:
        return {"seed": self.seed, **{name: getattr(self, name) for name in SETTINGS}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.settings.items())})"

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.update_every  # at least one policy update

    def reward(self, before: list[float], after: list[float]) -> float:
        """Sum of relative held-out loss drops; tiny ones count 0 and each is floored at -1."""
        total = 0.0
        for prev, now in zip(before, after, strict=True):
            drop = (prev - now) / max(abs(prev), 1e-12)
            total += max(drop, -1.0) if abs(drop) >= self.min_relative_drop else 0.0
        return total

    def _split(self, parts: Components, batch_size: int) -> tuple[Subset, list]:
        """Seeded split of the corpus into a training part and fixed held-out batches."""
        corpus = parts.corpus
        size = min(self.heldout_batches * batch_size, len(corpus) // 5)
        if size < 2 or len(corpus) - size < 2:
            raise ConfigError(f"mometas needs a corpus of 10+ examples; got {len(corpus)}")
        order = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(self.seed))
        chunks = torch.tensor_split(order[:size], max(1, size // batch_size))
        heldout = [
            next(ResumableBatches(Subset(corpus, c.tolist()), len(c), 0, parts.corpus_collate))
            for c in chunks
        ]
        return Subset(corpus, order[size:].tolist()), heldout

    @staticmethod
    @torch.no_grad()
    def _heldout_losses(encoder: nn.Module, objectives: nn.ModuleList, batches) -> list[float]:
        """Mean loss per objective, with the same corruption every time (forked, fixed RNG)."""
        encoder.eval(), objectives.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(HELDOUT_SEED)
            losses = [
                sum(o.loss(encoder, b).item() for b in batches) / len(batches) for o in objectives
            ]
        encoder.train(), objectives.train()
        return losses

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        began, config, steps = time.perf_counter(), budget.pretrain, budget.total_pretrain_steps
        names, device = [o.name for o in parts.objectives], config.device
        torch.manual_seed(self.seed)
        encoder = copy.deepcopy(parts.encoder).to(device).train()
        objectives = copy.deepcopy(parts.objectives).to(device).train()
        params = [*encoder.parameters(), *objectives.parameters()]
        optimizer = config.make_optimizer(params)
        train, heldout = self._split(parts, config.batch_size)
        heldout = [to_device(b, device) for b in heldout]
        batches = ResumableBatches(train, config.batch_size, self.seed, parts.corpus_collate)
        policy = _Policy(len(names), self.policy_lr, self.entropy_coef, self.seed)
        trajectory: list[TrajectoryPoint] = []
        previous: list[float] = []
        bar = tqdm(
            range(steps + 1), "mometas", disable=None if config.progress else True, leave=False
        )
        for step in bar:  # step 0 only measures the baseline held-out losses
            if step:
                choice = policy.sample()
                loss = objectives[choice].loss(encoder, to_device(next(batches), device))
                pretrain_descend(optimizer, loss, f"{names[choice]} at step {step}")
            if step % self.update_every:
                continue
            losses, metrics = self._heldout_losses(encoder, objectives, heldout), {}
            if step:
                metrics["reward"] = self.reward(previous, losses)
                policy.update(metrics["reward"])
            previous, named = losses, dict(zip(names, losses, strict=True))
            point = TrajectoryPoint(
                step=step, weights=policy.probs, objective_losses=named, metrics=metrics
            )
            trajectory.append(point)
            bar.set_postfix({n: f"{w:.2f}" for n, w in zip(names, point.weights, strict=True)})
            if callback:
                callback(point)
        evals = len(trajectory) * len(names) * len(heldout)
        cost = Cost(
            wall_clock_s=time.perf_counter() - began,
            device=device,
            passes={"pretrain": steps, "heldout_eval": evals},
            full_trainings=1,
        )
        return WeightingResult(
            strategy=self.name,
            objective_names=names,
            weights=policy.probs,
            trajectory=trajectory,
            cost=cost,
            settings=self.settings,
            encoder=encoder,
        )
