"""The functions Ray Tune runs: one cell, and one trial of a strategy's trial search.

A cell runs its strategy's own search (or, for a :class:`~baselines.search.TrialSearch`
strategy, loads the result of its search run by Tune beforehand), checkpoints it, then scores
the weights with the shared protocol and reports one results row. A retry after a failure
resumes from the checkpoint, so a finished search is never run twice; a resumable strategy also
continues from its own checkpoint inside the trial directory.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from baselines.search import TrialSearch
from harness.cells import Cell, build_parts, cell_budget, cell_strategy, score_cell, search_weights
from harness.faults import maybe_fail
from harness.row import ResultRow
from harness.rundir import RunDirectory
from harness.spec import ExperimentSpec
from harness.tune_search import COMPLETE, EPOCH, SCORE
from tapweight.result import WeightingResult

__all__ = ["run_cell", "run_search_trial", "trial_device", "ROW"]

ROW = "row"
"""The key of the results row (as JSON) in a cell's final report."""
_STATE_FILE = "cell_state.json"


def trial_device() -> str:
    """``cuda`` when Ray gave this trial a GPU, else ``cpu`` (the protocol's device follows)."""
    import ray

    return "cuda" if ray.get_gpu_ids() else "cpu"


def _node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _report(metrics: dict[str, Any], state: dict[str, Any] | None = None) -> None:
    from ray import tune

    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, _STATE_FILE).write_text(json.dumps(state))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _load_state() -> dict[str, Any]:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        return json.loads(Path(folder, _STATE_FILE).read_text())


def run_cell(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for one (dataset, strategy, seed) cell."""
    import torch

    spec = ExperimentSpec.model_validate(config["spec"])
    cell = Cell(**config["cell"])
    run_dir = RunDirectory(config["run_dir"])
    state = _load_state()
    # Finished before an interruption saved Tune's state: replay the row, never train again.
    finished = ResultRow.model_validate(state["row"]) if "row" in state else run_dir.row(cell.key)
    if finished is not None:
        run_dir.log_attempt(cell.key, "replayed finished result")
        _report({"phase": "done", ROW: finished.model_dump_json()})
        return
    # where each attempt ran: after a lost node, the retry names the node that took it over
    attempt = "resumed after search" if state else "started"
    run_dir.log_attempt(cell.key, f"{attempt} on {_node_address()}")
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    began = time.perf_counter()
    device = trial_device()
    parts = build_parts(spec, cell.dataset, cell.seed, config["data_dir"])
    loading_s = time.perf_counter() - began
    if not state:
        strategy = cell_strategy(spec, cell, run_dir)
        if isinstance(strategy, TrialSearch):  # its trials ran as Tune trials of their own
            searched = run_dir.search_dir(cell.dataset, cell.strategy, cell.seed)
            result = WeightingResult.load(searched)
        else:
            result = search_weights(spec, cell, strategy, parts, device, _report)
        state = {  # the strategy's own clock; for a trial search the sum of its Tune trials
            "result": result.model_dump(mode="json"),
            "search_s": loading_s + result.cost.wall_clock_s,
        }
        _report({"phase": "searched", "weights": result.used_weights}, state)
    maybe_fail(cell.key, run_dir)
    result = WeightingResult.model_validate(state["result"])
    row = score_cell(spec, cell, parts, result, state["search_s"], device, run_dir)
    final = {**state, "row": row.model_dump(mode="json")}
    _report({"phase": "done", ROW: row.model_dump_json()}, final)


def run_search_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for one proposal of a strategy's trial search.

    Validation only; reports the score after every intermediate finetuning epoch, so the
    strategy's early stopping can end it, and the final score with ``complete``.
    """
    import torch

    from baselines.trial import train_with_weights
    from tapweight.budget import counting_pretrain_steps

    spec = ExperimentSpec.model_validate(config["spec"])
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    parts = build_parts(spec, config["dataset"], config["seed"], config["data_dir"])
    metric = parts.task.metric
    budget = cell_budget(spec, config["strategy"], trial_device())
    began = time.perf_counter()

    with counting_pretrain_steps() as counted:

        def on_epoch(record: dict[str, float]) -> None:
            if int(record["epoch"]) < budget.finetune.epochs:
                _report(
                    {
                        SCORE: record[f"valid_{metric}"],
                        EPOCH: int(record["epoch"]),
                        "pretrain_steps": counted.steps,
                    }
                )

        trial = train_with_weights(
            parts, config["weights"], budget, config["search_seed"], on_epoch
        )
    _report(
        {
            SCORE: trial.valid_score,
            EPOCH: budget.finetune.epochs,
            COMPLETE: True,
            "passes": trial.passes,
            "pretrain_steps": counted.steps,
            "seconds": time.perf_counter() - began,
        }
    )
