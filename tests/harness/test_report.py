"""The report's aggregation (ranks over seeds, TapWeight against each strategy) and figures."""

from __future__ import annotations

import pytest

from harness.figures import draw_figures
from harness.paired import paired_differences
from harness.summary import average_ranks, summarize, versus
from tests.support import result_row


def _row(
    dataset: str, strategy: str, seed: int, test: float, seconds: float, metric: str, **changes
):
    return result_row(dataset, strategy, seed, test, seconds, metric, **changes)


def test_tapweight_against_each_strategy_respects_each_metrics_direction():
    rows = [
        # ROC-AUC: higher is better; TapWeight 0.80 beats uniform 0.70, loses to grid 0.90.
        *(_row("bbbp", "tapweight", s, 0.80, 20.0, "roc_auc") for s in (0, 1)),
        *(_row("bbbp", "uniform", s, 0.70, 10.0, "roc_auc") for s in (0, 1)),
        *(_row("bbbp", "grid", s, 0.90, 80.0, "roc_auc") for s in (0, 1)),
        # RMSE: lower is better; TapWeight 1.0 beats uniform 2.0 and ties grid.
        _row("esol", "tapweight", 0, 1.0, 40.0, "rmse"),
        _row("esol", "uniform", 0, 2.0, 10.0, "rmse"),
        _row("esol", "grid", 0, 1.0, 160.0, "rmse"),
    ]
    tables = summarize(rows)
    assert [s.strategy for s in tables["esol"]][-1] == "uniform"  # worst RMSE ranks last
    against = {row[0]: row[1:] for row in versus(tables, paired_differences(rows, "tapweight"))}
    assert set(against) == {"uniform", "grid"}
    # Two seeds with the same difference: an interval of width 0 excludes 0. One seed on ESOL:
    # no interval, so no verdict either way.
    assert against["uniform"] == [
        "1 / 1 / 0",
        "bbbp +0.100 [+0.100, +0.100], esol +1.000 (1 seed: no interval)",
        "2.83",  # √(2·4)
    ]
    assert against["grid"][0] == "0 / 1 / 1"
    assert against["grid"][1].startswith("bbbp -0.100 [-0.100, -0.100], esol +0.000")
    assert float(against["grid"][2]) == pytest.approx(0.25)
    ranks = dict((name, rank) for name, rank, _ in average_ranks(tables))
    assert ranks["uniform"] == 3.0 and ranks["tapweight"] == pytest.approx(1.75)


def test_no_tapweight_means_no_comparison_table():
    rows = [_row("bbbp", "uniform", 0, 0.7, 1.0, "roc_auc")]
    assert versus(summarize(rows), paired_differences(rows, "tapweight")) == []


def test_weight_trajectories_get_one_panel_per_dataset_and_searching_strategy(tmp_path):
    import matplotlib.image

    def traced(dataset: str, strategy: str):
        trajectory = [
            {"step": step, "weights": [w, 1 - w], "metrics": {"valid_roc_auc": 0.8}}
            for step, w in ((1, 0.5), (2, 0.7))
        ]
        return _row(dataset, strategy, 0, 0.8, 10.0, "roc_auc", trajectory=trajectory)

    rows = [
        traced("bbbp", "tapweight"), traced("bace", "tapweight"), traced("bace", "mometas"),
        _row("bbbp", "uniform", 0, 0.7, 1.0, "roc_auc"),  # nothing searched: no panel
    ]  # fmt: skip
    drawn = draw_figures(summarize(rows), rows, ["attr_mask", "edge_pred"], tmp_path)
    assert "trajectories" in drawn
    height, width, _ = matplotlib.image.imread(tmp_path / "trajectories.png").shape
    assert (height, width) == (2 * 385, 2 * 440)  # 2 datasets × 2 strategies, 4 × 3.5 in at 110 dpi


def test_the_end_task_weight_is_its_own_column_apart_from_the_objective_weights():
    from harness.report import HEADERS, summary_cells

    tartan = [
        _row("bbbp", "meta_tartan", s, 0.8, 1.0, "roc_auc", task_weight=weight)
        for s, weight in ((0, 0.2), (1, 0.4))
    ]
    rows = [*tartan, _row("bbbp", "uniform", 0, 0.7, 1.0, "roc_auc")]  # rows before the column
    summaries = {s.strategy: s for s in summarize(rows)["bbbp"]}
    assert summaries["meta_tartan"].task_weight == pytest.approx(0.3)
    assert summaries["uniform"].task_weight is None
    column = HEADERS.index("task weight")
    cells = {name: summary_cells(s) for name, s in summaries.items()}
    assert all(len(row) == len(HEADERS) for row in cells.values())
    assert cells["meta_tartan"][column] == "0.30" and cells["uniform"][column] == "–"
    assert cells["meta_tartan"][HEADERS.index("weights")] == "0.50 / 0.50"


def test_the_test_interval_is_students_over_seeds_and_absent_for_one_seed():
    from harness.report import HEADERS, summary_cells

    rows = [_row("bbbp", "uniform", seed, score, 1.0, "roc_auc")
            for seed, score in enumerate((0.7, 0.8, 0.9))]  # fmt: skip
    rows.append(_row("bbbp", "grid", 0, 0.8, 1.0, "roc_auc"))
    cells = {s.strategy: summary_cells(s) for s in summarize(rows)["bbbp"]}
    column = HEADERS.index("test 95% CI")
    # mean 0.8, std 0.1, t(0.975, 2) = 4.303: 0.8 ± 0.248
    assert cells["uniform"][column] == "[0.552, 1.048]"
    assert cells["grid"][column] == "–"
