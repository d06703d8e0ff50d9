"""Luo et al. 2021, "Meta-learning for downstream aware and agnostic pretraining".

Luo et al. 2021 (arXiv:2106.03270) is a proposal paper without experiments or code; this module
is "our implementation of the proposal". What follows the paper, and what we had to invent:

* **From the paper:** pretraining runs in episodes; in each episode a meta-learned selector picks
  the pretraining task expected to give the most useful learning signal, and the encoder trains
  on it; the selector comes in two variants, downstream-aware (it may look at the downstream
  task) and downstream-agnostic (it may not).
* **Invented here:** the selector is a softmax policy over one logit per objective, uniform at
  first, that samples ONE objective per episode; the encoder (one copy, with the objectives'
  heads) trains on it alone for ``episode_steps`` steps; the policy learns by REINFORCE with a
  running-mean baseline (momentum 0.9) and an entropy bonus (:func:`policy_step`); the reward
  is a relative loss drop over the episode: for ``aware``, the downstream validation loss of a
  cheap probe (a fresh linear head fit on frozen train-split features, so it reads the
  validation split), for ``agnostic``, the mean pretraining loss on a seeded held-out part of
  the corpus (fixed corruption seeds, so it never sees downstream labels); every default
  (episode length, learning rates, probe steps) is ours.
* **The harness's choice, as for MOMETAS:** the final policy probabilities become the static
  mixture weights the protocol retrains with.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Subset
from tqdm.auto import tqdm

from baselines.base import Budget, BudgetUse, ProgressCallback, Strategy
from tapweight.components import Components
from tapweight.data.batches import ResumableBatches
from tapweight.downstream.heads import batch_targets, task_loss
from tapweight.downstream.task import make_loader
from tapweight.errors import ConfigError
from tapweight.models.base import as_encoder
from tapweight.objectives.base import Objectives
from tapweight.pretrain import pretrain_descend
from tapweight.result import Cost, TrajectoryPoint, WeightingResult
from tapweight.training import to_device

__all__ = ["Luo", "policy_step"]

NOTE = "our implementation of the proposal (a proposal paper without experiments or code)"
VARIANTS = ("aware", "agnostic")
PROBE_LR = 0.1  # Adam on standardized features: a linear probe converges in tens of steps
BASELINE_MOMENTUM = 0.9


def policy_step(
    logits: Tensor, action: int, reward: float, baseline: float, lr: float, entropy_coef: float
) -> tuple[Tensor, float, float]:
    """One REINFORCE ascent step on ``(reward - baseline) · log π(action) + entropy_coef · H(π)``;
    returns the new logits, the advantage and the updated running-mean baseline."""
    logits = logits.detach().requires_grad_(True)
    advantage = reward - baseline
    log_probs = logits.log_softmax(0)
    entropy = -(log_probs.exp() * log_probs).sum()
    ascent = advantage * log_probs[action] + entropy_coef * entropy
    (gradient,) = torch.autograd.grad(ascent, logits)
    baseline = BASELINE_MOMENTUM * baseline + (1 - BASELINE_MOMENTUM) * reward
    return (logits + lr * gradient).detach(), advantage, baseline


class _ReadsValidation:
    """``requires_validation`` per instance (its variant); on the class, the default's (aware)."""

    def __get__(self, strategy: Luo | None, owner: type | None = None) -> bool:
        return strategy is None or strategy.variant == "aware"


class Luo(Strategy):
    """Luo et al. 2021, our implementation of the proposal: a policy picks one objective per
    episode."""

    name = "luo"
    requires_validation = _ReadsValidation()

    def __init__(
        self,
        *,
        seed: int = 0,
        variant: str = "aware",
        episode_steps: int = 20,
        policy_lr: float = 0.1,
        entropy_coef: float = 0.01,
        probe_steps: int = 50,
        heldout_batches: int = 2,
    ) -> None:
        super().__init__(seed=seed)
        if variant not in VARIANTS:
            raise ConfigError(f"unknown luo variant {variant!r}; choose {' or '.join(VARIANTS)}")
        counts = {"episode_steps": episode_steps, "probe_steps": probe_steps}
        for field, value in {**counts, "heldout_batches": heldout_batches}.items():
            if int(value) != value or value < 1:
                raise ConfigError(f"luo {field} must be an integer >= 1, got {value!r}")
        if not policy_lr > 0:
            raise ConfigError(f"luo policy_lr must be > 0, got {policy_lr!r}")
        if not entropy_coef >= 0:
            raise ConfigError(f"luo entropy_coef must be >= 0, got {entropy_coef!r}")
        self.variant, self.episode_steps, self.probe_steps = variant, episode_steps, probe_steps
        self.policy_lr, self.entropy_coef = policy_lr, entropy_coef
        self.heldout_batches = heldout_batches
        self.settings: dict[str, Any] = {
            "note": NOTE,
            "variant": variant,
            "seed": seed,
            "episode_steps": episode_steps,
            "policy_lr": policy_lr,
            "entropy_coef": entropy_coef,
            "probe_steps": probe_steps,
            "probe_lr": PROBE_LR,
            "heldout_batches": heldout_batches,
        }

    def __repr__(self) -> str:
        return f"Luo(variant={self.variant!r}, seed={self.seed})"

    def minimum_budget(self, num_objectives: int, budget: Budget) -> int:
        return self.episode_steps

    def budget_use(self, num_objectives: int, budget: Budget) -> BudgetUse:
        episodes = budget.total_pretrain_steps // self.episode_steps
        return BudgetUse(
            episodes * self.episode_steps,
            f"{episodes} whole episodes of {self.episode_steps} steps; the rest makes none",
        )

    def check(self, parts: Components, budget: Budget) -> None:
        super().check(parts, budget)
        if len(parts.corpus) < (4 if self.variant == "agnostic" else 2):
            raise ConfigError(f"luo_{self.variant} needs a larger corpus, got {len(parts.corpus)}")

    def search(
        self, parts: Components, budget: Budget, callback: ProgressCallback | None = None
    ) -> WeightingResult:
        began, config, aware = time.perf_counter(), budget.pretrain, self.variant == "aware"
        torch.manual_seed(self.seed)  # objectives corrupt batches from the global RNG
        encoder = copy.deepcopy(parts.encoder).to(config.device)
        objectives = copy.deepcopy(parts.objectives).to(config.device)
        names = [o.name for o in objectives]
        params = [*encoder.parameters(), *objectives.parameters()]
        optimizer = config.make_optimizer(params)
        corpus, heldout = parts.corpus, []
        if not aware:  # hold a seeded part of the corpus out of training
            order = torch.randperm(len(corpus), generator=torch.Generator().manual_seed(self.seed))
            size = min(self.heldout_batches * config.batch_size, len(corpus) // 2)
            held = Subset(corpus, order[:size].tolist())
            corpus = Subset(corpus, order[size:].tolist())
            loader = make_loader(held, config.batch_size, False, 0, parts.corpus_collate)
            heldout = [to_device(batch, config.device) for batch in loader]
        batches = ResumableBatches(corpus, config.batch_size, self.seed, parts.corpus_collate)

        def score() -> tuple[float, dict[str, float]]:
            """The loss whose relative drop is the reward, plus per-objective held-out losses."""
            if aware:
                return self._probe_loss(encoder, parts, config.device), {}
            losses = self._heldout_losses(encoder, objectives, heldout)
            return sum(losses.values()) / len(losses), losses

        logits = torch.zeros(len(objectives))
        policy_rng = torch.Generator().manual_seed(self.seed)
        baseline, steps, probes, last_losses = 0.0, 0, 0, dict[str, float]()
        before, _ = score()
        probes += self.probe_steps if aware else 0
        trajectory: list[TrajectoryPoint] = []
        episodes = budget.total_pretrain_steps // self.episode_steps
        bar = tqdm(range(episodes), desc="luo episodes", disable=None if config.progress else True)
        for _ in bar:
            action = int(torch.multinomial(logits.detach().softmax(0), 1, generator=policy_rng))
            encoder.train(), objectives.train()
            for _ in range(self.episode_steps):
                loss = objectives[action].loss(encoder, to_device(next(batches), config.device))
                pretrain_descend(optimizer, loss, f"{names[action]} at step {steps}")
                steps, last_losses[names[action]] = steps + 1, loss.item()
            after, heldout_losses = score()
            probes += self.probe_steps if aware else 0
            reward = (before - after) / max(before, 1e-8)
            logits, advantage, baseline = policy_step(
                logits, action, reward, baseline, self.policy_lr, self.entropy_coef
            )
            before = after
            metrics = {"reward": reward, "advantage": advantage, "objective": float(action)}
            metrics["probe_valid_loss" if aware else "heldout_loss"] = after
            weights = logits.detach().softmax(0).tolist()
            point = TrajectoryPoint(
                step=steps,
                weights=weights,
                objective_losses=heldout_losses or dict(last_losses),
                metrics=metrics,
            )
            trajectory.append(point)
            bar.set_postfix(objective=names[action], reward=f"{reward:.3f}")
            if callback:
                callback(point)
        cost = Cost(
            wall_clock_s=time.perf_counter() - began,
            device=config.device,
            passes={"pretrain": steps, "probe": probes},
            full_trainings=1,
        )
        return WeightingResult(
            strategy=f"luo_{self.variant}",
            objective_names=names,
            weights=logits.detach().softmax(0).tolist(),
            trajectory=trajectory,
            cost=cost,
            settings={**self.settings, "episodes": episodes},
            encoder=encoder,
        )

    def _heldout_losses(
        self, encoder: nn.Module, objectives: Objectives, heldout: list
    ) -> dict[str, float]:
        """Mean loss per objective on the held-out batches, each with its own fixed seed."""
        encoder.eval(), objectives.eval()
        totals = dict.fromkeys((o.name for o in objectives), 0.0)
        with torch.no_grad(), torch.random.fork_rng():  # training corruption stays untouched
            for b, batch in enumerate(heldout):
                for i, objective in enumerate(objectives):
                    torch.manual_seed(self.seed + 1000 * (b + 1) + i)
                    totals[objective.name] += objective.loss(encoder, batch).item() / len(heldout)
        return totals

    def _probe_loss(self, encoder: nn.Module, parts: Components, device: str) -> float:
        """Validation loss of a linear probe fit on frozen, standardized train features."""
        task = parts.task
        x_train, y_train, m_train = _features(encoder, task.loader("train", 256), device)
        x_valid, y_valid, m_valid = _features(encoder, task.loader("valid", 256), device)
        mean, std = x_train.mean(0), x_train.std(0, unbiased=False).clamp_min(1e-6)
        x_train, x_valid = (x_train - mean) / std, (x_valid - mean) / std
        if task.task_type == "regression":
            y_mean, y_std = (t.to(device) for t in task.train_target_stats())
            y_train, y_valid = (y_train - y_mean) / y_std, (y_valid - y_mean) / y_std
        probe = nn.Linear(x_train.shape[1], task.num_outputs).to(device)
        nn.init.zeros_(probe.weight), nn.init.zeros_(probe.bias)  # deterministic, convex fit
        optimizer = torch.optim.Adam(probe.parameters(), lr=PROBE_LR)
        for _ in range(self.probe_steps):
            optimizer.zero_grad(set_to_none=True)
            task_loss(task.task_type, probe(x_train), y_train, m_train).backward()
            optimizer.step()
        with torch.no_grad():
            return task_loss(task.task_type, probe(x_valid), y_valid, m_valid).item()


@torch.no_grad()
def _features(encoder: nn.Module, loader, device: str) -> tuple[Tensor, Tensor, Tensor]:
    """Frozen (eval-mode) embeddings, targets and label masks of a whole split."""
    encoder.eval()
    xs, ys, masks = [], [], []
    for batch in loader:
        batch = to_device(batch, device)
        y, mask = batch_targets(batch)
        xs.append(as_encoder(encoder).embed(batch))
        ys.append(y)
        masks.append(mask)
    return torch.cat(xs), torch.cat(ys), torch.cat(masks)
