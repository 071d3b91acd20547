"""The tabular labs: iris-mlp (stratified k-fold) and tabular-regression (diabetes)."""

from __future__ import annotations

import json

import pytest

from labs import run


def _report(res):
    return json.loads((res.dir / "explanations" / "report.json").read_text())


def test_iris_mlp_smoke(tmp_path):
    res = run("iris-mlp", track=False, runs_dir=tmp_path, progress=False, k=3, epochs=3,
              explain_samples=1, explain_num_samples=100)
    m = res.metrics
    assert 0.0 <= m["cv_acc_mean"] <= 1.0 and m["cv_acc_std"] >= 0.0
    table = json.loads((res.dir / "folds.table.json").read_text())
    assert [r[0] for r in table["rows"]] == ["fold0", "fold1", "fold2", "mean", "std"]
    assert sum(r[1] for r in table["rows"][:3]) == 150  # every flower held out once
    assert {"folds.png", "curves.png", "confusion.png"} <= \
        {p.name for p in (res.dir / "figures").iterdir()}
    assert list(res.models) == [""]  # the final model is kept; the fold models are not
    for i in range(3):
        assert (res.dir / "checkpoints" / f"fold{i}" / "last.pt").is_file()
    assert _report(res)["kind"] == "tabular"


def test_tabular_regression_smoke(tmp_path):
    res = run("tabular-regression", track=False, runs_dir=tmp_path, progress=False, epochs=2,
              explain_samples=1, explain_num_samples=100)
    m = res.metrics
    assert {"test_r2", "test_mse", "test_mae", "sklearn_mlp_r2", "linear_r2"} <= set(m)
    assert m["linear_r2"] > 0.2  # scikit-learn's baseline on the same split
    table = json.loads((res.dir / "comparison.table.json").read_text())
    assert [r[0] for r in table["rows"]] == ["this net", "sklearn MLPRegressor",
                                             "linear regression"]
    assert (res.dir / "figures" / "predicted_vs_true.png").is_file()
    # LIME in regression mode: the explained value is the prediction, no class
    (e,) = _report(res)["explanations"]
    assert e["explained_class"] is None and e["predicted"] is None
    assert set(e["weights"]) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}


@pytest.mark.slow
def test_iris_mlp_cross_validates_to_about_96_percent():
    res = run("iris-mlp", track=False, progress=False, explain_num_samples=300)
    m = res.metrics  # seed 0: 0.967 ± 0.045 over the 10 stratified folds
    assert 0.93 <= m["cv_acc_mean"] <= 1.0
    assert 0.0 < m["cv_acc_std"] < 0.08


@pytest.mark.slow
def test_tabular_regression_matches_linear_regression():
    res = run("tabular-regression", track=False, progress=False, explain_num_samples=500)
    m = res.metrics  # seed 0: net 0.30, linear regression 0.33, sklearn MLP 0.21
    assert m["test_r2"] > 0.25 and m["test_r2"] > m["linear_r2"] - 0.1
    # body-mass index and s5 (a serum measure) drive disease progression: LIME finds them
    for e in _report(res)["explanations"]:
        top = sorted(e["weights"], key=lambda f: -abs(e["weights"][f]))[:3]
        assert {"bmi", "s5"} & set(top)
