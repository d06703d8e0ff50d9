"""MOMETAS: a meta-learned sampler over pretraining objectives (Wu et al., EMNLP 2022).

Instead of mixing losses, every step trains on ONE objective drawn from a softmax policy. Every
``update_every`` steps the policy is rewarded by how much the objectives' losses on held-out
unlabeled batches dropped since the last update, and updated with REINFORCE plus an entropy bonus.
It reads no labels, so it is a label-free baseline.

The defaults are the public code's (github gingasan/mometas, ``run_pretraining.py``; the
fidelity table in ``docs/baselines.md`` maps each line): the absolute reward threshold, a fresh
held-out batch per objective after every update, held-out batches drawn from the training
corpus itself (the reference's evaluation file is one of its training shards) and gradient
clipping at 1. ``heldout_draw="fixed"`` and ``heldout_source="split"`` keep our earlier,
lower-variance measurement as named settings. Our choice, not the paper's: MOMETAS samples one
objective per step, while the harness needs static mixture weights, so the final sampling
probabilities become the weights the protocol retrains with. The paper's scale (BERT-large,
50,000 steps on C4) is far above ours (small encoders, a few hundred steps: a few policy updates).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from baselines.base import Budget, ProgressCallback, Strategy
from tapweight.components import Components
from tapweight.data.batches import ResumableBatches
from tapweight.errors import ConfigError
from tapweight.objectives.base import Objectives
from tapweight.pretrain import pretrain_descend
from tapweight.result import Cost, TrajectoryPoint, WeightingResult
from tapweight.training import to_device

__all__ = ["Mometas", "reward"]

SETTINGS = (
    "update_every", "entropy_coef", "policy_lr", "reward_threshold", "heldout_batches",
    "heldout_draw", "heldout_source", "max_grad_norm",
)  # fmt: skip
HELDOUT_DRAWS = ("fresh", "fixed")
HELDOUT_SOURCES = ("corpus", "split")
HELDOUT_SEED = 12345
"""Seeds the held-out batches' corruption (masking...): the same seed for every ``fixed``
measurement, one more per measurement for ``fresh`` ones; the training corruption is untouched."""


def reward(before: Sequence[float], after: Sequence[float], threshold: float) -> float:
    """Sum over objectives of the relative held-out loss drop, each floored at -1, counting only
    objectives whose loss changed by more than ``threshold`` in absolute terms (the reference's
    ``individual_rewarding``, with its 1e-6 smoothing)."""
    total = 0.0
    for a, b in zip(before, after, strict=True):
        drop = (a - b + 1e-6) / (a + 1e-6) if abs(a - b) > threshold else 0.0
        total += max(drop, -1.0)
    return total


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
        reward_threshold: float = 1e-3,
        heldout_batches: int = 1,
        heldout_draw: str = "fresh",
        heldout_source: str = "corpus",
        max_grad_norm: float | None = 1.0,
    ) -> None:
        super().__init__(seed=seed)
        limits = {
            "update_every": (update_every, update_every >= 1, ">= 1"),
            "entropy_coef": (entropy_coef, entropy_coef >= 0, ">= 0"),
            "policy_lr": (policy_lr, policy_lr > 0, "> 0"),
            "reward_threshold": (reward_threshold, reward_threshold >= 0, ">= 0"),
            "heldout_batches": (heldout_batches, heldout_batches >= 1, ">= 1"),
            "heldout_draw": (heldout_draw, heldout_draw in HELDOUT_DRAWS, HELDOUT_DRAWS),
            "heldout_source": (heldout_source, heldout_source in HELDOUT_SOURCES, HELDOUT_SOURCES),
            "max_grad_norm": (max_grad_norm, max_grad_norm is None or max_grad_norm > 0, "> 0"),
        }
        for field, (value, ok, rule) in limits.items():
            if not ok:
                raise ConfigError(f"mometas {field} must be {rule}, got {value!r}")
        self.update_every, self.entropy_coef, self.policy_lr = update_every, entropy_coef, policy_lr
        self.reward_threshold, self.heldout_batches = reward_threshold, heldout_batches
        self.heldout_draw, self.heldout_source = heldout_draw, heldout_source
        self.max_grad_norm = max_grad_norm

    @property
    def settings(self) -> dict[str, Any]:
        return {"seed": self.seed, **{name: getattr(self, name) for name in SETTINGS}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.settings.items())})"

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.update_every  # at least one policy update

    def reward(self, before: list[float], after: list[float]) -> float:
        return reward(before, after, self.reward_threshold)

    def _split(self, corpus: Any, batch_size: int) -> tuple[Any, Any]:
        """The training corpus and the pool held-out batches are drawn from: the whole corpus
        (the reference), or a seeded part held out of training (``split``, up to 20%)."""
        if self.heldout_source == "corpus":
            if len(corpus) < 2:
                raise ConfigError(f"mometas needs a corpus of 2+ examples; got {len(corpus)}")
            return corpus, corpus
        size = min(self.heldout_batches * batch_size, len(corpus) // 5)
        if size < 2 or len(corpus) - size < 2:
            raise ConfigError(
                f"mometas heldout_source='split' needs a corpus of 10+ examples; got {len(corpus)}"
            )
        order = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(self.seed))
        return Subset(corpus, order[size:].tolist()), Subset(corpus, order[:size].tolist())

    def _draw(self, pool: Any, parts: Components, config, generator, count: int) -> list:
        """``heldout_batches`` batches per objective, sampled with replacement from ``pool``
        (the reference's ``k_shot_sampling``)."""
        size = min(config.batch_size, len(pool))
        draws = torch.randint(len(pool), (count, self.heldout_batches, size), generator=generator)
        collate = parts.corpus_collate
        return [
            [to_device(next(ResumableBatches(Subset(pool, b), size, 0, collate)), config.device)
             for b in per_objective.tolist()]
            for per_objective in draws
        ]  # fmt: skip

    @staticmethod
    @torch.no_grad()
    def _heldout_losses(
        encoder: nn.Module, objectives: Objectives, batches: list[list], seed: int
    ) -> list[float]:
        """Mean loss of each objective on its own batches, in eval mode (no buffer moves), with
        corruption drawn from ``seed`` in a forked RNG."""
        encoder.eval(), objectives.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            losses = [
                sum(o.loss(encoder, b).item() for b in own) / len(own)
                for o, own in zip(objectives, batches, strict=True)
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
        train, pool = self._split(parts.corpus, config.batch_size)
        draws = torch.Generator().manual_seed(self.seed)  # apart from the training batches
        heldout = self._draw(pool, parts, config, draws, len(names))
        batches = ResumableBatches(train, config.batch_size, self.seed, parts.corpus_collate)
        policy = _Policy(len(names), self.policy_lr, self.entropy_coef, self.seed)
        fresh, trajectory = self.heldout_draw == "fresh", list[TrajectoryPoint]()
        previous: list[float] = []
        bar = tqdm(
            range(steps + 1), "mometas", disable=None if config.progress else True, leave=False
        )
        for step in bar:  # step 0 only measures the baseline held-out losses
            if step:
                choice = policy.sample()
                loss = objectives[choice].loss(encoder, to_device(next(batches), device))
                what = f"{names[choice]} at step {step}"
                pretrain_descend(optimizer, loss, what, max_grad_norm=self.max_grad_norm)
            if step % self.update_every:
                continue
            seed = HELDOUT_SEED + (len(trajectory) if fresh else 0)
            losses, metrics = self._heldout_losses(encoder, objectives, heldout, seed), {}
            if step:
                metrics["reward"] = self.reward(previous, losses)
                policy.update(metrics["reward"])
                if fresh:  # the next reward compares these losses with a new draw's
                    heldout = self._draw(pool, parts, config, draws, len(names))
            previous, named = losses, dict(zip(names, losses, strict=True))
            point = TrajectoryPoint(
                step=step, weights=policy.probs, objective_losses=named, metrics=metrics
            )
            trajectory.append(point)
            bar.set_postfix({n: f"{w:.2f}" for n, w in zip(names, point.weights, strict=True)})
            if callback:
                callback(point)
        evals = len(trajectory) * len(names) * self.heldout_batches
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
