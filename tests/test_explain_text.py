"""The LIME text explainer on models whose answer is known: it must find the word that decides."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explain
from explain import ExplainError, Subject


def keyword_model(texts) -> np.ndarray:
    """P(positive) is high exactly when "good" occurs and "not" does not."""
    p = np.array([0.95 if ("good" in t.split() and "not" not in t.split()) else 0.1
                  for t in texts])
    return np.stack([1 - p, p], axis=1)


def test_text_kind_is_registered():
    assert "text" in explain.explainer_kinds()


def test_finds_the_deciding_words_and_writes_png_json_html(tmp_path):
    s = Subject("text", keyword_model, ["the movie was good and the cast was fine",
                                        "the movie was not good"],
                labels=[1, 0], class_names=["negative", "positive"])
    report = explain.explain(s, tmp_path, n=2, num_samples=300)
    first, second = report.explanations
    assert first.class_name == "positive" and first.ranked()[0][0] == "good"
    assert second.class_name == "negative" and {w for w, _ in second.ranked()[:2]} >= {"not"}
    assert first.deletion_top > first.deletion_random  # removing "good" flips it; chance less
    assert report.summary["explain_deletion_ratio"] > 1
    for i in (0, 1):
        assert (tmp_path / f"sample_{i}.png").is_file()
        assert "<html>" in (tmp_path / f"sample_{i}.html").read_text().lower()
        saved = json.loads((tmp_path / f"sample_{i}.json").read_text())
        assert saved["kind"] == "text" and saved["weights"]


def test_empty_text_and_unknown_words_do_not_crash(tmp_path):
    s = Subject("text", keyword_model, ["", "!!!", "zzz qqq"])
    report = explain.explain(s, tmp_path, n=3, num_samples=50)
    assert report.explanations[0].weights == {} and np.isnan(report.explanations[0].score)
    assert set(report.explanations[2].weights) == {"zzz", "qqq"}
    assert (tmp_path / "sample_0.png").is_file()


def test_regression_mode(tmp_path):
    def length_value(texts):
        return np.array([float(len(t.split())) + 3 * ("big" in t.split()) for t in texts])

    s = Subject("text", length_value, ["a big red ball"], mode="regression")
    report = explain.explain(s, None, n=1, num_samples=200)
    e = report.explanations[0]
    assert e.explained_class is None and e.probability == pytest.approx(7.0)
    assert e.ranked()[0][0] == "big"


def test_numeric_samples_are_refused():
    s = Subject("text", keyword_model, np.zeros((2, 3)))
    with pytest.raises(ExplainError, match="needs text samples"):
        explain.explain(s, None, n=1, num_samples=20)


def test_explain_does_not_import_labs():
    import subprocess
    import sys

    code = ("import sys, explain, explain.text; "
            "assert not any(m == 'labs' or m.startswith('labs.') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
