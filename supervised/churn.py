"""Bank customer churn: a dense network (11 inputs -> 128 ReLU -> dropout 0.5 -> 2) predicts
who leaves; precision, recall, F1, ROC-AUC and the decision threshold.

The data is the Kaggle "Churn_Modelling.csv" layout (`--set data_file=...`). One row per
customer, a header row, these columns (others, like RowNumber, CustomerId and Surname, are
ignored):

    CreditScore, Geography, Gender, Age, Tenure, Balance, NumOfProducts, HasCrCard,
    IsActiveMember, EstimatedSalary, Exited

Geography (France, Germany, Spain) becomes two indicators, Germany and Spain (France is the
reference: a third column would be their sum's complement, the "dummy variable trap"), and
Gender one (Male = 1): with the eight numeric columns, 11 inputs. Exited (0/1) is the target.
Without a file, the lab GENERATES a synthetic data set with the same columns (said on every
run and in the figures): the numbers it reaches describe that generator, not real customers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from labs import DataNotFound, Lab, LabError, SplitConfig, datasets, option, plots

NUMERIC = ("CreditScore", "Age", "Tenure", "Balance", "NumOfProducts", "HasCrCard",
           "IsActiveMember", "EstimatedSalary")
COLUMNS = ("CreditScore", "Geography", "Gender", "Age", "Tenure", "Balance", "NumOfProducts",
           "HasCrCard", "IsActiveMember", "EstimatedSalary", "Exited")
GEOGRAPHY = ("France", "Germany", "Spain")  # France: the reference level
GENDER = ("Female", "Male")
FEATURES = ["CreditScore", "Geography=Germany", "Geography=Spain", "Gender=Male", "Age",
            "Tenure", "Balance", "NumOfProducts", "HasCrCard", "IsActiveMember",
            "EstimatedSalary"]


@dataclass
class Config(SplitConfig):
    data_file: str | None = option(None, "CSV in the Kaggle bank-churn layout (see the module "
                                         "docstring); none: a generated, synthetic data set")
    synthetic_rows: int = option(4000, "rows of the generated data set", min=100)
    hidden: int = option(128, "units of the hidden layer", min=1)
    dropout: float = option(0.5, "dropout after the hidden layer", min=0, lt=1)
    class_weights: Literal["none", "balanced"] = option(
        "none", "weight the loss by inverse class frequency (balanced) so the rare churners "
                "count as much as the stayers")
    threshold: float = option(0.5, "P(churn) above which a customer is predicted to leave",
                              gt=0, lt=1)
    epochs: int = option(30, "passes over the training data")
    batch_size: int = option(32, "samples per gradient step")

    def validate(self) -> None:
        """A missing file or column stops the run before it starts (rows are read later)."""
        super().validate()
        if self.data_file:
            check_header(self.data_file)


def check_header(path: str | Path) -> Path:
    """The file exists and its header names every column of the layout, or one-line errors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFound(f"churn data file {str(path)!r} not found: pass a CSV with the "
                           f"columns {', '.join(COLUMNS)} (Kaggle's Churn_Modelling.csv), or "
                           f"leave data_file unset for the synthetic data")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
    except UnicodeDecodeError:
        raise LabError(f"{path.name} is not a UTF-8 text CSV") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise LabError(f"{path.name} lacks the column(s) {', '.join(missing)}; a churn CSV "
                       f"needs {', '.join(COLUMNS)}")
    return path


def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, 11), Exited (n,)) from a CSV in the Kaggle layout; one-line errors."""
    path = check_header(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k}
                for r in csv.DictReader(f)]
    if not rows:
        raise LabError(f"{path.name} has a header but no rows")
    x, y = [], []
    for line, r in enumerate(rows, start=2):
        try:
            num = {c: float(r[c]) for c in (*NUMERIC, "Exited")}
        except ValueError:
            bad = next(c for c in (*NUMERIC, "Exited") if not _is_number(r[c]))
            raise LabError(f"{path.name} line {line}: {bad}={r[bad]!r} is not a number") from None
        if r["Geography"] not in GEOGRAPHY:
            raise LabError(f"{path.name} line {line}: Geography={r['Geography']!r}; expected "
                           f"one of {', '.join(GEOGRAPHY)}")
        if r["Gender"] not in GENDER:
            raise LabError(f"{path.name} line {line}: Gender={r['Gender']!r}; expected one of "
                           f"{', '.join(GENDER)}")
        if num["Exited"] not in (0.0, 1.0):
            raise LabError(f"{path.name} line {line}: Exited={r['Exited']!r}; expected 0 or 1")
        x.append(encode_row(num, r["Geography"], r["Gender"]))
        y.append(int(num["Exited"]))
    y = np.array(y)
    if len(np.unique(y)) < 2:
        raise LabError(f"{path.name}: every row has Exited={y[0]}; a classifier needs both "
                       f"classes")
    return np.array(x, dtype=np.float32), y


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def encode_row(num: dict[str, float], geography: str, gender: str) -> list[float]:
    """One customer as the 11 inputs, in FEATURES' order."""
    return [num["CreditScore"], float(geography == "Germany"), float(geography == "Spain"),
            float(gender == "Male"), num["Age"], num["Tenure"], num["Balance"],
            num["NumOfProducts"], num["HasCrCard"], num["IsActiveMember"],
            num["EstimatedSalary"]]


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A made-up bank with the Kaggle columns and ~20% churners. Churn odds rise with age,
    a German address, a large balance, being female, being inactive, and 3-4 products:
    a known, partly non-linear rule (age peaks in the 50s) for the network to find."""
    rng = np.random.default_rng(seed)
    geo = rng.choice(3, n, p=[0.5, 0.25, 0.25])
    male = rng.random(n) < 0.55
    age = np.clip(rng.normal(39, 10, n), 18, 92).round()
    tenure = rng.integers(0, 11, n).astype(float)
    balance = np.where((geo == 1) | (rng.random(n) < 0.6),
                       np.clip(rng.normal(120_000, 30_000, n), 0, None), 0.0).round(2)
    products = rng.choice([1, 2, 3, 4], n, p=[0.5, 0.45, 0.04, 0.01]).astype(float)
    card = (rng.random(n) < 0.7).astype(float)
    active = (rng.random(n) < 0.5).astype(float)
    score = np.clip(rng.normal(650, 95, n), 350, 850).round()
    salary = rng.uniform(100, 200_000, n).round(2)
    logit = (-1.9 + 1.6 * np.exp(-(((age - 55) / 10) ** 2)) + 0.05 * (age - 39)
             + 0.8 * (geo == 1) - 0.5 * male - 1.0 * active + 0.3 * balance / 100_000
             + 2.5 * (products >= 3) - 0.6 * (products == 2) - 0.002 * (score - 650))
    exited = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x = np.stack([score, geo == 1, geo == 2, male, age, tenure, balance, products, card,
                  active, salary], axis=1).astype(np.float32)
    return x, exited


class ChurnClassifier(Lab):
    """Dense net (11 -> 128 ReLU -> dropout 0.5 -> 2) predicts bank churn: precision, recall, AUC.

    Reads a CSV of yours in the Kaggle layout, or generates synthetic data (and says so)."""

    lesson = "tabular"
    tags = ("supervised", "mlp", "tabular", "binary")
    explains = "tabular"
    headline = "test_roc_auc"
    Config = Config

    def data(self, cfg: Config):
        if cfg.data_file:
            x, y = read_csv(cfg.data_file)
            source = Path(cfg.data_file).name
        else:
            x, y = synthetic(cfg.synthetic_rows, cfg.seed)
            source = "SYNTHETIC data"
        data = datasets.from_arrays(x, y, test_size=cfg.test_size, val_size=cfg.val_size,
                                    seed=cfg.seed, feature_names=FEATURES,
                                    class_names=["stays", "leaves"])
        data.extras["source"] = source
        return data

    def model(self, cfg: Config, data) -> nn.Module:
        return nn.Sequential(nn.Linear(data.n_features, cfg.hidden), nn.ReLU(),
                             nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 2))

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        source = data.extras["source"]
        if not cfg.data_file:
            print("note: no data_file given: training on a GENERATED, synthetic churn data "
                  "set; pass --set data_file=Churn_Modelling.csv for real customers")
        weight = None
        if cfg.class_weights == "balanced":
            counts = torch.bincount(data.train.y, minlength=2).float()
            weight = counts.sum() / (2 * counts)  # sklearn's "balanced" weights
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=nn.CrossEntropyLoss(weight=weight))

        p = fit.trainer.predict(data.test.x).float().softmax(-1)[:, 1].cpu().numpy()
        y = data.test.y.numpy()
        scores = binary_scores(y, p, cfg.threshold)
        run.figure("curves", plots.curves(fit.history, title=f"churn-classifier ({source})"))
        run.figure("threshold", threshold_figure(y, p, cfg.threshold, source))
        run.figure("confusion", plots.confusion(y, (p >= cfg.threshold).astype(int),
                                                data.class_names))
        print(f"{source}: {int(y.sum())} of {len(y)} test customers leave; at threshold "
              f"{cfg.threshold:g}: precision {scores['precision']:.3f}, recall "
              f"{scores['recall']:.3f}, F1 {scores['f1']:.3f}, ROC-AUC {scores['roc_auc']:.3f}")
        return {**{f"test_{k}": v for k, v in scores.items()}, "test_acc": fit.test["acc"],
                "churn_rate": float(y.mean()), "synthetic": float(not cfg.data_file)}


def binary_scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    pred = (p >= threshold).astype(int)
    return {"precision": float(precision_score(y, pred, zero_division=0)),
            "recall": float(recall_score(y, pred, zero_division=0)),
            "f1": float(f1_score(y, pred, zero_division=0)),
            "roc_auc": float(roc_auc_score(y, p))}


def threshold_figure(y: np.ndarray, p: np.ndarray, threshold: float, source: str) -> Figure:
    """Precision, recall and F1 against the threshold, and the ROC curve."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

    precision, recall, cuts = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(cuts, precision[:-1], label="precision")
    ax.plot(cuts, recall[:-1], label="recall")
    ax.plot(cuts, f1[:-1], label="F1")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("threshold on P(leaves)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("moving the threshold trades precision for recall")
    fpr, tpr, _ = roc_curve(y, p)
    ax = fig.add_subplot(1, 2, 2)
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    ax.set_title("ROC")
    fig.suptitle(f"churn-classifier on {source}")
    return fig
