"""Tabular explainer: LIME's LimeTabularExplainer built from the training data's statistics.

Continuous features are NOT discretized by default: LIME's weight is then a local slope (per
training standard deviation), which converts to per-unit weights comparable with a linear
model's own weights. `discretize_continuous=True` gives lime's quartile-bin explanations
("x1 <= 0.5") instead. lime and matplotlib are imported inside functions.
"""

from __future__ import annotations

import numpy as np

from explain.base import Explainer, Explanation, register
from explain.errors import ExplainError
from explain.fidelity import deletion_test, describe_deletion, rank_correlation, true_row
from explain.figures import fit_canvas, label_text
from explain.subject import Subject


@register("tabular")
class TabularExplainer(Explainer):
    """LIME tabular explanations, classification and regression."""

    options = {
        **Explainer.options,
        "discretize_continuous": False,   # True: lime's binned features (weights not per unit)
        "discretizer": "quartile",        # quartile | decile | entropy (when discretizing)
        "categorical_features": None,     # column indices lime samples as categories
        "kernel_width": None,             # lime default: sqrt(n_features) * 0.75
        "show": 20,                       # bars in the figure
    }

    def prepare(self, subject: Subject) -> None:
        if not subject.numeric:
            raise ExplainError("the tabular explainer needs numeric rows; these samples are "
                               "text (use a text explainer)")
        if subject.samples.ndim != 2:
            raise ExplainError(f"tabular samples must be rows (n, n_features); got shape "
                               f"{subject.samples.shape}")
        n_features = subject.samples.shape[1]
        if subject.train is None:
            raise ExplainError("the tabular explainer needs Subject.train (training rows) for "
                               "LIME's feature statistics")
        if subject.train.ndim != 2 or subject.train.shape[1] != n_features:
            raise ExplainError(f"train has shape {subject.train.shape} but samples have "
                               f"{n_features} features per row")
        names = subject.feature_names or [f"x{j}" for j in range(n_features)]
        if len(names) != n_features:
            raise ExplainError(f"{len(names)} feature_names for {n_features} features")
        self.names = [str(n) for n in names]
        self.train = subject.train.astype(np.float64)
        if subject.baseline is None:
            self.fill = self.train.mean(axis=0)
        elif np.size(subject.baseline) in (1, n_features):
            base = np.asarray(subject.baseline, dtype=np.float64).reshape(-1)
            self.fill = np.broadcast_to(base, (n_features,)).copy()
        else:
            raise ExplainError(f"baseline needs 1 or {n_features} values, "
                               f"got {np.size(subject.baseline)}")
        self.categorical = list(self.opts["categorical_features"] or [])

    def explain_one(self, subject: Subject, i: int, seed: int, num_samples: int) -> Explanation:
        from lime.lime_tabular import LimeTabularExplainer

        row = np.asarray(subject.samples[i], dtype=np.float64)
        target, prob = self.target(subject, subject.outputs(row[None])[0])

        def predict(batch: np.ndarray) -> np.ndarray:
            # lime passes all num_samples perturbed rows at once; subject.predict batches them.
            return subject.outputs(batch)

        n_features = len(row)
        # Fresh explainer with an integer seed: lime's random_state advances across calls.
        # feature_selection="none": all features are kept anyway (num_features=n_features).
        lime = LimeTabularExplainer(
            self.train, mode=subject.mode, feature_names=self.names,
            class_names=None if subject.class_names is None else list(subject.class_names),
            categorical_features=self.categorical,
            discretize_continuous=self.opts["discretize_continuous"],
            discretizer=self.opts["discretizer"], kernel_width=self.opts["kernel_width"],
            feature_selection="none", random_state=seed)
        # ONE label per call: lime keeps only the last label's score and local_pred.
        labels = (target,) if target is not None else (0,)
        exp = lime.explain_instance(row, predict, labels=labels, num_features=n_features,
                                    num_samples=num_samples)
        key = target if target is not None else 1  # lime stores regression weights under 1
        w = np.zeros(n_features)
        for f, v in exp.local_exp[key]:
            w[f] = v
        continuous = self._continuous(lime, n_features)
        scale = lime.scaler.scale_
        # Contribution of a feature at this row, relative to the baseline it is deleted to:
        # continuous: slope (per std) x distance in stds; binned/categorical: the weight if the
        # baseline falls in another bin/category (deleting then flips the indicator), else 0.
        if lime.discretizer is not None:
            moved = lime.discretizer.discretize(row) != lime.discretizer.discretize(self.fill)
        else:
            moved = row != self.fill
        contrib = np.where(continuous, w * (row - self.fill) / scale, w * moved)
        k = self.deletion_k(n_features)
        dele = deletion_test(predict, row, self.fill, np.arange(n_features), contrib, target,
                             k, seed, self.opts["deletion_draws"])
        rank = None
        if subject.true_weights is not None:
            truth = true_row(subject.true_weights, n_features, target)
            # Per input unit where possible (continuous): the scale a linear model's weights use.
            rank = rank_correlation(np.where(continuous, w / scale, w), truth)
        cond = exp.domain_mapper.discretized_feature_names or [
            f"{n}={v:.3g}" for n, v in zip(self.names, row, strict=True)]
        return Explanation(
            index=i, kind=self.kind, label=subject.label(i), predicted=target,
            explained_class=target, class_name=subject.class_name(target), probability=prob,
            weights=dict(zip(self.names, w.tolist(), strict=True)),
            intercept=float(exp.intercept[key]), score=float(exp.score),
            local_pred=float(np.ravel(exp.local_pred)[0]), deletion_k=dele.k,
            deletion_top=dele.top, deletion_random=dele.random,
            deletion_features=[self.names[f] for f in dele.features], rank_corr=rank,
            arrays={"conditions": np.array(cond, dtype=object)})

    def _continuous(self, lime, n_features: int) -> np.ndarray:
        """Features whose LIME weight is a slope (not binned, not categorical)."""
        mask = np.ones(n_features, dtype=bool)
        mask[self.categorical] = False
        if lime.discretizer is not None:
            mask[list(lime.discretizer.lambdas)] = False
        return mask

    def figure(self, subject: Subject, explanation: Explanation):
        from matplotlib.figure import Figure

        e = explanation
        cond = list(e.arrays.get("conditions", list(e.weights)))
        w = np.array(list(e.weights.values()))
        order = np.argsort(-np.abs(w))[: self.opts["show"]][::-1]  # largest on top
        fig = Figure(figsize=(6.4, 0.35 * len(order) + 1.6), layout="constrained")
        ax = fig.subplots()
        ax.barh(range(len(order)), w[order],
                color=["tab:green" if v > 0 else "tab:red" for v in w[order]])
        ax.set_yticks(range(len(order)), [cond[j] for j in order], fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        truth = "" if e.label is None else f"label {label_text(e.label)} · "
        what = f"class {e.class_name} ({e.probability:.2f})" if e.explained_class is not None \
            else f"value {e.probability:.3g}"
        ax.set_xlabel("LIME weight: green supports, red opposes" if
                      self.opts["discretize_continuous"] else
                      "LIME weight: local slope per training std\n(green: output rises with it)",
                      fontsize=9)
        ax.set_title(f"sample {e.index}: {truth}{what}\nlocal R² {e.score:.2f} · "
                     f"{describe_deletion(e.deletion_k, e.deletion_top, e.deletion_random)}",
                     fontsize=9)
        return fit_canvas(fig)  # long feature names widen the figure instead of being cut
