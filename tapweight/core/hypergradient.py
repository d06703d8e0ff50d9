"""TapWeight's hypergradient where its levels' structure makes it cheap; betty's elsewhere.

betty's ``darts`` estimates each link of the chain reweight → finetune → pretrain → reweight by
finite differences of the lower level. One link has a structure a generic engine cannot see:
finetune → pretrain. The finetune loss reaches the pretrained encoder only through the proximal
term lam·Σ‖θ_ft − θ_pt‖² (divided by the parameter count when normalized), whose mixed second
derivative is −2·lam·I on the shared parameters. The link is exact and costs no pass, where
betty's darts spends two forward and backward passes of the finetuned model and ``exact`` a
double backward.

The other candidate, pretrain → reweight (the loss is Σ softmax(logits)ᵢ·Lᵢ, so λ's link needs
the objective losses alone), is not taken over: autograd already stops at the logits there, so
betty's difference costs forwards only; forwards without a graph measured 0.060 s against
0.064 s per evaluation on the BBBP bench, not worth a second path.

:func:`structured` wraps betty's function for ``darts`` and ``exact`` and takes over the
proximal link where the term is L2 (``TapWeightConfig.structured_hypergradient``, on by
default). The text variant's L1 term (second derivative zero almost everywhere, not so for a
finite difference), ``neumann``, ``cg``, ``sama`` and BLO's joint level go to betty unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tapweight.core.problems import Finetune, Pretrain

__all__ = ["STRUCTURED", "finetune_to_pretrain", "register", "structured"]

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
    implicit = [by_target.get(id(p), torch.zeros_like(p)) for p in prev.trainable_parameters()]
    return _deliver(implicit, prev, sync)


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
        return hypergradient.jvp_fn_mapping[kind](vector, curr, prev, sync)

    return jvp


STRUCTURED = ("darts", "exact")
"""Types with a structured variant, registered in betty as ``structured_<type>``."""


def register() -> None:
    """Add ``structured_darts`` and ``structured_exact`` to betty's hypergradient types."""
    import betty.hypergradient as hypergradient

    for kind in STRUCTURED:
        hypergradient.jvp_fn_mapping.setdefault(f"structured_{kind}", structured(kind))
