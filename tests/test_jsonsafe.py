"""One JSON rule for every file a run writes: NaN and infinities are `null` (strict JSON),
whether they land in summary.json (labs) or in an explanation's JSON (explain)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from explain.base import Explanation
from explain.report import Report
from labs import rundir

VALUES = [1, 1.5, "nan", None, True, float("nan"), float("inf"), -float("inf"),
          np.float32("nan"), np.float64(2.5), np.int64(3), np.bool_(True), np.array(4.0),
          torch.tensor(float("nan")), torch.tensor(2.0), Path("a/b"),
          {"a": float("nan"), "b": [np.float32(1.0), float("inf")]}]
EXPECTED = [1, 1.5, "nan", None, True, None, None, None, None, 2.5, 3, True, 4.0, None, 2.0,
            "a/b", {"a": None, "b": [1.0, None]}]


def strict_loads(text: str):
    """json.loads that refuses NaN / Infinity tokens, as most JSON readers do."""
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value, expected", list(zip(VALUES, EXPECTED, strict=True)),
                         ids=[repr(v)[:30] for v in VALUES])
def test_labs_and_explain_share_one_rule(value, expected):
    from explain.base import _plain

    assert rundir.jsonable(value) == expected
    assert _plain(value) == expected
    assert type(rundir.jsonable(value)) is type(expected)  # plain Python, not numpy
    json.dumps(rundir.jsonable(value), allow_nan=False)


def test_summary_json_and_explanation_json_agree_on_nan(tmp_path):
    metrics = {"explain_deletion_ratio": float("nan"), "loss": np.float32("inf"),
               "acc": torch.tensor(0.75)}
    rundir.write_summary(tmp_path, "completed", metrics, headline="acc")
    summary = strict_loads((tmp_path / "summary.json").read_text())["metrics"]

    e = Explanation(index=0, kind="tabular", label=1, predicted=1, explained_class=1,
                    class_name="b", probability=0.9, weights={"x0": float("nan")},
                    intercept=0.0, score=float("nan"), local_pred=0.5, deletion_k=1,
                    deletion_top=0.1, deletion_random=0.0, deletion_features=["x0"])
    report = strict_loads(Report("tabular", [e], summary=dict(metrics)).to_json())
    assert summary == report["summary"] == {"explain_deletion_ratio": None, "loss": None,
                                            "acc": 0.75}
    assert report["explanations"][0]["score"] is None
    assert report["explanations"][0]["weights"] == {"x0": None}
    assert math.isnan(metrics["explain_deletion_ratio"])  # the caller's values are untouched


def test_figure_titles_round_a_regression_label():
    import numpy as np

    from explain.figures import label_text

    assert label_text(0.79889315366745) == "0.799"
    assert label_text(np.float32(12.3456)) == "12.3"
    assert label_text(3) == "3" and label_text("cat") == "cat"
    assert label_text(np.int64(7)) == "7"
