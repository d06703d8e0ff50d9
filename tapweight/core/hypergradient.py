"""TapWeight's hypergradient where its levels' structure makes it cheap; betty's elsewhere.

betty's ``darts`` estimates each link of the chain reweight → finetune → pretrain → reweight by
finite differences of full forward and backward passes of the lower level. Two links have a
structure a generic engine cannot see:

* finetune → pretrain. The finetune loss reaches the pretrained encoder only through the
  proximal term lam·Σ‖θ_ft − θ_pt‖² (divided by the parameter count when normalized), whose
  mixed second derivative is −2·lam·I on the shared parameters. The link is exact and costs no
  pass: betty's darts spends two forward and backward passes of the finetuned model on it.
* pretrain → reweight. The pretraining loss is Σ softmax(logits)ᵢ·Lᵢ(θ), so its gradient with
  respect to the logits is J_softmaxᵀ·L(θ): it needs the objective losses alone. The central
  difference of L at θ ± εv is two forward passes without a graph, where betty's darts pays two
  forward and backward passes.

:func:`structured` wraps betty's function for a hypergradient type and takes over these two
links where they apply (``TapWeightConfig.structured_hypergradient``, on by default): the
closed form for ``darts`` and ``exact`` (it is exact) with the L2 proximal term; the
forward-only difference for ``darts`` (``exact`` keeps its double backward). The text
variant's L1 term (second derivative zero almost everywhere, not so for a finite difference),
``neumann``, ``cg``, ``sama`` and BLO's joint level go to betty unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tapweight.core.problems import Finetune, Pretrain, Reweight

__all__ = ["STRUCTURED", "finetune_to_pretrain", "pretrain_to_reweight", "register", "structured"]

JvpFn = Callable[[Sequence[Tensor], object, object, bool], "list[Tensor] | None"]


def _deliver(implicit: list[Tensor], prev, sync: bool) -> list[Tensor] | None:
    """As betty's jvp functions do: add to ``prev``'s gradients (sync) or return."""
    if sync:
        prev.set_grads(prev.trainable_parameters(), implicit)
        return None
    return implicit


def finetune_to_pretrain(
    vector: Sequence[Tensor], curr: Finetune, prev: Pretrain, sync: bool
) -> list[Tensor] | None:
    """−∂²L_ft/∂θ_pt∂θ_ft · v = 2·lam·v on the encoder parameters both levels share (divided by
    their count when the proximal term is normalized); zero on heads."""
    proximal = curr.proximal
    finetuned = dict(proximal.finetuned().named_parameters())
    pretrained = dict(proximal.pretrained().named_parameters())
    shared = {id(finetuned[n]): pretrained[n] for n in finetuned.keys() & pretrained.keys()}
    scale = 2.0 * proximal.lam
    if proximal.normalize:
        scale /= max(1, sum(pretrained[n].numel() for n in finetuned.keys() & pretrained.keys()))
    by_target = {
        id(shared[id(p)]): scale * v
        for p, v in zip(curr.meta_trainable_parameters(), vector, strict=True)
        if id(p) in shared
    }
    implicit = [
        by_target.get(id(p), torch.zeros_like(p)) for p in prev.trainable_parameters()
    ]
    return _deliver(implicit, prev, sync)


def pretrain_to_reweight(
    vector: Sequence[Tensor], curr: Pretrain, prev: Reweight, sync: bool
) -> list[Tensor] | None:
    """J_softmaxᵀ·(L(θ − εv) − L(θ + εv)) / 2ε with ε = darts_alpha/‖v‖, from the objective
    losses of the level's own batch and masks (forward passes, no graph)."""
    params = list(curr.meta_trainable_parameters())
    eps = curr.config.darts_alpha / (torch.cat([v.reshape(-1) for v in vector]).norm() + 1e-15)
    eps = eps.item()
    with torch.no_grad():
        for p, v in zip(params, vector, strict=True):
            p.add_(v, alpha=eps)
        plus = curr.objective_losses(curr.cur_batch)
        for p, v in zip(params, vector, strict=True):
            p.sub_(v, alpha=2 * eps)
        minus = curr.objective_losses(curr.cur_batch)
        for p, v in zip(params, vector, strict=True):
            p.add_(v, alpha=eps)
        weights = curr.objective_weights().detach()
        jacobian = torch.diag(weights) - torch.outer(weights, weights)  # of softmax, symmetric
        logits_grad = jacobian @ ((minus - plus) / (2 * eps))
    (logits,) = prev.trainable_parameters()
    return _deliver([logits_grad.to(logits.dtype).reshape(logits.shape)], prev, sync)


def structured(kind: str) -> JvpFn:
    """betty's jvp function for type ``kind`` (looked up at each call), with the structured
    links above taking over where they apply."""
    import betty.hypergradient as hypergradient

    def jvp(vector, curr, prev, sync):
        if (
            kind in ("darts", "exact")
            and isinstance(curr, Finetune)
            and isinstance(prev, Pretrain)
            and curr.proximal.kind == "l2"
        ):
            return finetune_to_pretrain(vector, curr, prev, sync)
        if kind == "darts" and isinstance(curr, Pretrain) and isinstance(prev, Reweight):
            return pretrain_to_reweight(vector, curr, prev, sync)
        return hypergradient.jvp_fn_mapping[kind](vector, curr, prev, sync)

    return jvp


STRUCTURED = ("darts", "exact")
"""Types with a structured variant, registered in betty as ``structured_<type>``."""


def register() -> None:
    """Add ``structured_darts`` and ``structured_exact`` to betty's hypergradient types."""
    import betty.hypergradient as hypergradient

    for kind in STRUCTURED:
        hypergradient.jvp_fn_mapping.setdefault(f"structured_{kind}", structured(kind))
