"""Text explainer: LIME's LimeTextExplainer, which removes words and watches the output.

The interpretable features are the distinct words of the text (lime's bag-of-words mode:
removing "not" removes every "not"). The deletion test removes the words LIME ranks first vs
as many random words, on the same token map, so its number means what it means for images
and tables. Each explanation keeps lime's own HTML view (written beside the PNG by
`save_extras`). Regression subjects (one value per text) are explained as a two-column
output whose second column is the value. lime and matplotlib are imported inside functions.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from explain.base import Explainer, Explanation, register
from explain.errors import ExplainError
from explain.fidelity import deletion_test
from explain.figures import fit_canvas
from explain.subject import Subject


@register("text")
class TextExplainer(Explainer):
    """LIME text explanations: a weight per word, for classification and regression."""

    options = {
        **Explainer.options,
        "split_expression": r"\W+",   # what separates words (lime's default)
        "kernel_width": 25,           # lime's default, on cosine distance
        "show": 15,                   # bars in the figure
    }

    def prepare(self, subject: Subject) -> None:
        if subject.numeric:
            raise ExplainError("the text explainer needs text samples (strings); these are "
                               "numbers (use the tabular or image explainer)")

    def _outputs(self, subject: Subject, texts) -> np.ndarray:
        """(N, C) outputs LIME can fit; regression values become the column 1 of (N, 2)."""
        out = subject.outputs(np.asarray(list(texts), dtype=object))
        if subject.mode == "regression":
            return np.stack([np.zeros_like(out), out], axis=1)
        return out

    def explain_one(self, subject: Subject, i: int, seed: int, num_samples: int) -> Explanation:
        from lime.lime_text import IndexedString, LimeTextExplainer

        text = str(subject.samples[i])
        out0 = self._outputs(subject, [text])[0]
        target, prob = self.target(subject, out0 if subject.mode == "classification"
                                   else out0[1])
        key = target if target is not None else 1
        indexed = IndexedString(text, bow=True, split_expression=self.opts["split_expression"])
        words = [str(w) for w in indexed.inverse_vocab]
        base = dict(index=i, kind=self.kind, label=subject.label(i), predicted=target,
                    explained_class=target, class_name=subject.class_name(target),
                    probability=prob)
        if not words:  # an empty (or punctuation-only) text: nothing to remove, nothing to rank
            nan = float("nan")
            return Explanation(**base, weights={}, intercept=nan, score=nan, local_pred=nan,
                               deletion_k=0, deletion_top=nan, deletion_random=nan,
                               deletion_features=[], arrays={"text": np.array(text)})

        lime = LimeTextExplainer(
            kernel_width=self.opts["kernel_width"], class_names=None if subject.mode ==
            "regression" or subject.class_names is None else list(subject.class_names),
            split_expression=self.opts["split_expression"], bow=True, random_state=seed,
            feature_selection="none")
        # ONE label per call: lime keeps only the last label's score and local_pred.
        exp = lime.explain_instance(text, lambda t: self._outputs(subject, t), labels=(key,),
                                    num_features=len(words), num_samples=num_samples)
        w = np.zeros(len(words))
        for f, v in exp.local_exp[key]:
            w[f] = v

        # Deletion on lime's token list (words and the separators between them): a removed
        # word becomes "", as in lime's own perturbations.
        tokens = np.array(indexed.as_list, dtype=object)
        fmap = np.full(len(tokens), -1)
        for f, pos in enumerate(indexed.positions):
            fmap[pos] = f

        def predict(batch: np.ndarray) -> np.ndarray:
            texts = np.array(["".join(row) for row in batch], dtype=object)
            return subject.outputs(texts)  # (N, C), or (N,) values in regression

        dele = deletion_test(predict, tokens, "", fmap, w, target, self.deletion_k(len(words)),
                             seed, self.opts["deletion_draws"])
        try:
            html = exp.as_html(labels=(key,))
        except Exception:  # noqa: BLE001 - the HTML view is an extra; never fail the run on it
            html = ""
        return Explanation(
            **base, weights=dict(zip(_unique(words), w.tolist(), strict=True)),
            intercept=float(exp.intercept[key]), score=float(exp.score),
            local_pred=float(np.ravel(exp.local_pred)[0]), deletion_k=dele.k,
            deletion_top=dele.top, deletion_random=dele.random,
            deletion_features=[words[f] for f in dele.features],
            arrays={"text": np.array(text), "html": np.array(html)})

    def figure(self, subject: Subject, explanation: Explanation):
        from matplotlib.figure import Figure

        e = explanation
        names = list(e.weights)
        w = np.array(list(e.weights.values()), dtype=float)
        order = np.argsort(-np.abs(w), kind="stable")[: self.opts["show"]][::-1]
        fig = Figure(figsize=(6.4, 0.32 * max(1, len(order)) + 2.0), layout="constrained")
        ax = fig.subplots()
        if len(order):
            ax.barh(range(len(order)), w[order],
                    color=["tab:green" if v > 0 else "tab:red" for v in w[order]])
            ax.set_yticks(range(len(order)), [names[j] for j in order], fontsize=9)
        else:
            ax.text(0.5, 0.5, "no words to explain", ha="center", va="center",
                    transform=ax.transAxes)
        ax.axvline(0, color="black", lw=0.8)
        text = str(e.arrays.get("text", ""))
        shown = textwrap.shorten(text, 160, placeholder=" ...") or "(empty text)"
        label = subject.class_name(int(e.label)) if isinstance(e.label, (int, np.integer)) \
            else e.label
        truth = "" if e.label is None else f"label {label} · "
        what = f"class {e.class_name} ({e.probability:.2f})" if e.explained_class is not None \
            else f"value {e.probability:.3g}"
        ax.set_xlabel("LIME weight of the word: green supports, red opposes", fontsize=9)
        ax.set_title("\n".join(textwrap.wrap(f"“{shown}”", 70)) +
                     f"\nsample {e.index}: {truth}{what} · local R² {e.score:.2f} · deletion "
                     f"top-{e.deletion_k} {e.deletion_top:.3f} vs random "
                     f"{e.deletion_random:.3f}", fontsize=9)
        return fit_canvas(fig)

    def save_extras(self, explanation: Explanation, stem: Path) -> dict[str, Path]:
        """lime's interactive HTML view as `<stem>.html`."""
        html = str(explanation.arrays.get("html", ""))
        if not html:
            return {}
        path = stem.with_suffix(".html")
        path.write_text(html, encoding="utf-8")
        return {"html": path}


def _unique(words: list[str]) -> list[str]:
    """Words as dict keys (lime's bag of words already has each once; keep it safe)."""
    seen: dict[str, int] = {}
    out = []
    for w in words:
        n = seen.get(w, 0)
        seen[w] = n + 1
        out.append(w if n == 0 else f"{w}#{n}")
    return out
