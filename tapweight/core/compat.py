"""Fixes that make betty-ml 0.2.1 work on torch 2.13, plus the exact hypergradient type.

Betty 0.2.1 predates two torch changes:

1. ``betty.patch.optimizer.patch_optimizer`` rebuilds the optimizer as
   ``cls(params, **optimizer.defaults)``. torch 2.13's AdamW keeps ``decoupled_weight_decay`` in
   its defaults but does not accept it in its constructor: TypeError. The fix passes only the
   defaults the constructor accepts.
2. The ``neumann`` and ``cg`` hypergradients call ``autograd.grad`` without ``allow_unused``,
   which raises as soon as one parameter of a level does not take part in its loss (an objective
   head, a BERT pooler). The fixed versions skip parameters without a gradient path and give
   them zero hypergradient.

:func:`apply` installs both fixes and registers ``exact`` (Hessian-vector products by double
backward, no finite differences) in betty's hypergradient table. It is idempotent.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["apply", "patch_optimizer", "neumann", "cg", "exact", "ORIGINALS"]

ORIGINALS: dict[str, object] = {}


def patch_optimizer(optimizer, params, is_zero):
    """Betty's optimizer re-creation, passing only constructor-accepted defaults."""
    accepted = inspect.signature(optimizer.__class__.__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    if is_zero:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(
            params=params,
            optimizer_class=optimizer.__class__,
            parameters_as_bucket_view=True,
            **defaults,
        )
    return optimizer.__class__(params, **defaults)


def _zeros_for_none(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def _inner_gradient(curr) -> tuple[list[int], list[Tensor], list[Tensor]]:
    """Gradient of ``curr``'s loss with a graph, keeping only parameters that reach the loss."""
    params = curr.trainable_parameters()
    loss = curr.training_step_exec(curr.cur_batch)
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    used = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    return used, [grads[i] for i in used], [params[i] for i in used]


def _finish(in_grad, prev, vector_used, sync):
    """``-d(in_grad . v)/d prev``: set as gradients (sync) or returned."""
    prev_params = prev.trainable_parameters()
    if not in_grad:
        implicit = [torch.zeros_like(p) for p in prev_params]
    else:
        implicit = torch.autograd.grad(
            in_grad, prev_params, grad_outputs=vector_used, allow_unused=True
        )
        implicit = [-g for g in _zeros_for_none(implicit, prev_params)]
    if sync:
        prev.set_grads(prev_params, implicit)
        return None
    return implicit


def neumann(vector, curr, prev, sync):
    """Betty's Neumann-series hypergradient, tolerant of unused parameters."""
    assert len(curr.paths) == 0, "neumann method is not supported for higher order MLO!"
    config = curr.config
    used, in_grad, params = _inner_gradient(curr)
    v = [vector[i] for i in used]
    p = v
    for _ in range(config.neumann_iterations):
        hvp = torch.autograd.grad(
            in_grad, params, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        hvp = _zeros_for_none(hvp, params)
        v = [v_i - config.neumann_alpha * h_i for v_i, h_i in zip(v, hvp, strict=True)]
        p = [v_i + p_i for v_i, p_i in zip(v, p, strict=True)]
    v2 = [config.neumann_alpha * p_i for p_i in p]
    return _finish(in_grad, prev, v2, sync)


def cg(vector, curr, prev, sync):
    """Betty's conjugate-gradient hypergradient, tolerant of unused parameters."""
    assert len(curr.paths) == 0, "cg method is not supported for higher order MLO!"
    config = curr.config
    used, in_grad, params = _inner_gradient(curr)
    r = [vector[i].clone() for i in used]
    x = [torch.zeros_like(v) for v in r]
    p = [v.clone() for v in r]

    def flat(tensors):
        return torch.cat([t.reshape(-1) for t in tensors]) if tensors else torch.zeros(0)

    for _ in range(config.cg_iterations):
        hvp = torch.autograd.grad(
            in_grad, params, grad_outputs=p, retain_graph=True, allow_unused=True
        )
        hvp = [config.cg_alpha * h for h in _zeros_for_none(hvp, params)]
        numerator = flat(r).dot(flat(r))
        alpha = numerator / flat(hvp).dot(flat(p)).clamp_min(1e-30)
        x = [xx + alpha * pp for xx, pp in zip(x, p, strict=True)]
        r_new = [rr - alpha * hh for rr, hh in zip(r, hvp, strict=True)]
        beta = flat(r_new).dot(flat(r_new)) / numerator.clamp_min(1e-30)
        p = [rr + beta * pp for rr, pp in zip(r_new, p, strict=True)]
        r = r_new
    x = [config.cg_alpha * xx for xx in x]
    return _finish(in_grad, prev, x, sync)


def exact(vector, curr, prev, sync):
    """``-d/d prev (grad_curr L_curr . v)`` by double backward: the quantity ``darts``
    estimates by finite differences, without step-size error (a Hessian-vector product with
    ``torch.autograd``)."""
    used, in_grad, _ = _inner_gradient(curr)
    return _finish(in_grad, prev, [vector[i] for i in used], sync)


def apply() -> None:
    """Install the fixes and the ``exact`` type into betty (idempotent)."""
    import betty.hypergradient as hypergradient
    import betty.patch.optimizer as optimizer_patch
    import betty.problems.problem as problem_module

    if ORIGINALS:
        return
    ORIGINALS["patch_optimizer"] = optimizer_patch.patch_optimizer
    ORIGINALS["neumann"] = hypergradient.jvp_fn_mapping["neumann"]
    ORIGINALS["cg"] = hypergradient.jvp_fn_mapping["cg"]
    optimizer_patch.patch_optimizer = patch_optimizer
    problem_module.patch_optimizer = patch_optimizer  # imported by name there
    hypergradient.jvp_fn_mapping["neumann"] = neumann
    hypergradient.jvp_fn_mapping["cg"] = cg
    hypergradient.jvp_fn_mapping["exact"] = exact
