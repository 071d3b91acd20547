"""perceptron-gates extended: the McCulloch-Pitts unit, every truth-table row explained, and
deletion tests that compare nothing called "not meaningful"."""

from __future__ import annotations

import json

import pytest
import torch

from explain.base import Explanation
from explain.fidelity import deletion_meaningful, describe_deletion
from explain.tabular import TabularExplainer
from labs import run
from supervised.perceptron import mcculloch_pitts, mcp_truth_table


def test_mcculloch_pitts_three_inputs_or_and_and_the_veto():
    columns, rows, acc = mcp_truth_table(3, theta_or=1, theta_and=3)
    assert columns == ["x1", "x2", "x3", "inhibit", "OR (theta=1)", "AND (theta=3)"]
    assert len(rows) == 16 and acc == {"OR": 1.0, "AND": 1.0}
    free = {tuple(r[:3]): (r[4], r[5]) for r in rows if r[3] == 0}
    assert free[(0, 0, 0)] == (0, 0) and free[(0, 1, 0)] == (1, 0) and free[(1, 1, 1)] == (1, 1)
    assert all(r[4] == r[5] == 0 for r in rows if r[3] == 1)  # inhibited: never fires
    # threshold 2 of 3 is neither: "at least two" (majority)
    _, rows2, acc2 = mcp_truth_table(3, theta_or=1, theta_and=2)
    assert acc2["AND"] < 1.0 and [r[5] for r in rows2 if r[3] == 0] == [0, 0, 0, 1, 0, 1, 1, 1]


def test_a_single_inhibitory_input_vetoes_any_excitation():
    x = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert mcculloch_pitts(x, 1, torch.tensor([0, 1])).tolist() == [1, 0]
    assert mcculloch_pitts(x, 1).tolist() == [1, 1]


def test_deletion_with_nothing_to_compare_is_not_meaningful():
    assert not deletion_meaningful(0.0, 0.0)
    assert deletion_meaningful(1.0, 0.0) and deletion_meaningful(0.0, 0.5)
    assert describe_deletion(1, 0.0, 0.0) == \
        "deletion top-1: not meaningful (removing features changes nothing)"
    assert describe_deletion(2, 0.5, 0.25) == "deletion top-2 0.500 vs random 0.250"


def _explanation(top, random):
    return Explanation(index=0, kind="tabular", label=0, predicted=0, explained_class=0,
                       class_name="0", probability=1.0, weights={"x1": 0.2, "x2": -0.1},
                       intercept=0.0, score=0.5, local_pred=0.9, deletion_k=1,
                       deletion_top=top, deletion_random=random, deletion_features=["x1"])


@pytest.mark.parametrize("top, random, shown", [(0.0, 0.0, "not meaningful"),
                                                 (1.0, 0.5, "top-1 1.000 vs random 0.500")])
def test_tabular_figure_says_not_meaningful_instead_of_zero_vs_zero(top, random, shown):
    fig = TabularExplainer().figure(None, _explanation(top, random))
    title = fig.axes[0].get_title()
    assert shown in title and ("0.000 vs random 0.000" not in title)


def test_every_truth_table_row_is_explained_including_1_1(tmp_path):
    res = run("perceptron-gates", track=False, runs_dir=tmp_path, progress=False,
              gates=["AND", "OR"], explain_num_samples=200)
    assert res.config.explain_samples == 4
    for gate in ("AND", "OR"):
        report = json.loads((res.dir / "explanations" / gate / "report.json").read_text())
        assert [e["index"] for e in report["explanations"]] == [0, 1, 2, 3]  # (1,1) is row 3
        assert (res.dir / "explanations" / gate / "sample_3.png").is_file()
    and_rows = json.loads((res.dir / "explanations" / "AND" / "report.json").read_text())
    e11 = and_rows["explanations"][3]
    assert e11["label"] == 1 and e11["deletion"]["top"] == 1.0  # removing x1 stops AND firing
    table = json.loads((res.dir / "mcculloch_pitts.table.json").read_text())
    assert len(table["rows"]) == 16 and res.metrics["mcp_vetoed_fires"] == 0.0
