"""TapWeight's hypergradient where its levels' structure makes it cheap; betty's elsewhere.

betty's ``darts`` estimates each link of the chain reweight → finetune → pretrain → reweight by
central differences of the lower level (two evaluations with a graph each); ``exact`` by a
double backward. Two links have a structure a generic engine cannot see:

- finetune → pretrain. The finetune loss reaches the pretrained encoder only through the
  proximal term lam·Σ‖θ_ft − θ_pt‖² (divided by the parameter count when normalized), whose
  mixed second derivative is −2·lam·I on the shared parameters: the link is 2·lam·v, exact and
  without a pass (:func:`finetune_to_pretrain`). The text variant's L1 term (second derivative
  zero almost everywhere, not so for a finite difference) goes to betty.
- pretrain → reweight. The pretraining loss is Σ λᵢ(φ)·Lᵢ(θ), so the link −∂²L/∂φ∂θ·v is
  −∂/∂φ Σ λᵢ·sᵢ with sᵢ = ∇Lᵢ·v: directional derivatives of the objective losses, and φ's
  part by autograd through the softmax alone (:func:`pretrain_to_reweight`). ``darts`` takes
  sᵢ by betty's central difference, two passes at θ ± εv, without building their graphs and
  backpropagating them to φ (the same numbers up to rounding). ``exact`` takes them by
  forward-mode differentiation: one pass carrying tangents, where betty's ``exact`` runs a
  double backward through the encoder.

Why not fewer passes: λ's link needs the objectives' slopes at the current parameters. The
descent step's forward is one optimizer step away (θ before its update); a one-sided
difference from there was measured: on the tests' molecule run its λ gradient pointed
opposite to betty's exact (cosine −0.99), the step moves θ farther than the curvature allows.
The profile and the floor this leaves are in BENCHMARKS.md (``bench/tapweight_cost.py``).

:func:`structured` wraps betty's function for ``darts`` and ``exact`` and takes over these links
(``TapWeightConfig.structured_hypergradient``, on by default). Where λ has two paths to the upper
loss (text: the finetuned model and the proximal term), :func:`through_last_link_once` sums
them before λ's link, which betty would evaluate once per path. ``neumann``, ``cg``, ``sama`` and
BLO's joint level go to betty unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from tapweight.core.problems import Finetune, Level, Pretrain, Reweight

__all__ = [
    "STRUCTURED",
    "finetune_to_pretrain",
    "pretrain_to_reweight",
    "register",
    "shares_last_link",
    "structured",
    "through_last_link_once",
]

JvpFn = Callable[[Sequence[Tensor], object, object, bool], "list[Tensor] | None"]


def _deliver(implicit: list[Tensor], prev: Level, sync: bool) -> list[Tensor] | None:
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
    implicit = [by_target.get(id(p), torch.zeros_like(p)) for p in prev.trainable_parameters()]
    return _deliver(implicit, prev, sync)


def _trainable_names(level: Level) -> list[str]:
    """The names of ``level.trainable_parameters()``, in that order."""
    return [name for name, p in level.module.named_parameters() if p.requires_grad]


def objective_slopes_exact(vector: Sequence[Tensor], curr: Pretrain) -> Tensor:
    """sᵢ = ∇Lᵢ·v at the current parameters, by forward-mode differentiation."""
    with torch.no_grad(), forward_ad.dual_level():
        duals = {
            name: forward_ad.make_dual(p.detach(), v.detach().to(p.dtype))
            for name, p, v in zip(
                _trainable_names(curr), curr.trainable_parameters(), vector, strict=True
            )
        }
        losses = curr.objective_losses(curr.cur_batch, duals)
        slopes = forward_ad.unpack_dual(losses).tangent
    return torch.zeros_like(losses) if slopes is None else slopes


def objective_slopes_darts(vector: Sequence[Tensor], curr: Pretrain) -> Tensor:
    """sᵢ ≈ (Lᵢ(θ + εv) − Lᵢ(θ − εv)) / 2ε with ε = R/‖v‖ (R: ``darts_alpha``), as betty's
    darts differences the pretraining loss."""
    norm = torch.linalg.vector_norm(torch.stack([v.norm() for v in vector])).item()
    eps = curr.config.darts_alpha / (norm + 1e-15)
    names, params = _trainable_names(curr), curr.trainable_parameters()
    with torch.no_grad():
        plus, minus = (
            curr.objective_losses(
                curr.cur_batch,
                {n: p + sign * eps * v for n, p, v in zip(names, params, vector, strict=True)},
            )
            for sign in (1.0, -1.0)
        )
    return (plus - minus) / (2 * eps)


def pretrain_to_reweight(
    vector: Sequence[Tensor], curr: Pretrain, prev: Reweight, sync: bool, kind: str
) -> list[Tensor] | None:
    """−∂/∂φ Σ λᵢ(φ)·sᵢ, what betty's links return for L_pt = Σ λᵢ·Lᵢ, with the slopes sᵢ of
    ``kind`` (``darts`` or ``exact``)."""
    slopes = (objective_slopes_darts if kind == "darts" else objective_slopes_exact)(vector, curr)
    weights = curr.objective_weights()
    params = prev.trainable_parameters()
    grads = torch.autograd.grad(-(weights * slopes.to(weights)).sum(), params, allow_unused=True)
    implicit = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
    return _deliver(implicit, prev, sync)


def shares_last_link(paths: Sequence[Sequence[Level]]) -> bool:
    """More than one path, each ending with the same structured pretrain → reweight link: the
    text variant, where λ reaches the upper loss through the finetuned model and through the
    proximal term's pretrained encoder."""
    if len(paths) < 2:
        return False
    pretrain, reweight = paths[0][-2], paths[0][-1]
    return (
        isinstance(pretrain, Pretrain)
        and isinstance(reweight, Reweight)
        and pretrain.config.type in {f"structured_{kind}" for kind in STRUCTURED}
        and all(len(p) >= 3 and p[-2] is pretrain and p[-1] is reweight for p in paths)
    )


def through_last_link_once(
    loss: Tensor, paths: Sequence[Sequence[Level]], sync: bool
) -> list[Tensor] | None:
    """What betty's ``get_grads`` returns summed over ``paths`` (:func:`shares_last_link`), with
    λ's link evaluated once. betty runs each path to its end; the last link is linear in its
    vector, so the paths' vectors at the pretraining level are summed first, halving the
    costly link (two passes for darts, one forward-mode pass for exact) on text."""
    import betty.hypergradient as hypergradient

    pretrain, reweight = paths[0][-2], paths[0][-1]
    total: list[Tensor] | None = None
    for index, path in enumerate(paths):
        params = path[1].meta_trainable_parameters()
        grads = torch.autograd.grad(
            loss, params, retain_graph=index < len(paths) - 1, allow_unused=True
        )
        vector = [
            torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)
        ]
        for i in range(1, len(path) - 2):
            vector = hypergradient.jvp_fn_mapping[path[i].config.type](
                vector, path[i], path[i + 1], False
            )
        total = vector if total is None else [a + b for a, b in zip(total, vector, strict=True)]
    assert total is not None
    kind = pretrain.config.type.removeprefix("structured_")
    return pretrain_to_reweight(total, pretrain, reweight, sync, kind)


def structured(kind: str) -> JvpFn:
    """betty's jvp function for type ``kind`` (looked up at each call), with the structured
    links above taking over where they apply."""
    import betty.hypergradient as hypergradient

    def jvp(vector, curr, prev, sync):
        if kind in STRUCTURED:
            if (
                isinstance(curr, Finetune)
                and isinstance(prev, Pretrain)
                and curr.proximal.kind == "l2"
            ):
                return finetune_to_pretrain(vector, curr, prev, sync)
            if isinstance(curr, Pretrain) and isinstance(prev, Reweight):
                return pretrain_to_reweight(vector, curr, prev, sync, kind)
        return hypergradient.jvp_fn_mapping[kind](vector, curr, prev, sync)

    return jvp


STRUCTURED = ("darts", "exact")
"""Types with a structured variant, registered in betty as ``structured_<type>``."""


def register() -> None:
    """Add ``structured_darts`` and ``structured_exact`` to betty's hypergradient types."""
    import betty.hypergradient as hypergradient

    for kind in STRUCTURED:
        hypergradient.jvp_fn_mapping.setdefault(f"structured_{kind}", structured(kind))
