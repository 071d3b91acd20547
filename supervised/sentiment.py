"""Three-class sentiment of short texts: LSTM and GRU over word embeddings vs a bag of words.

Each text is tokenized, mapped to ids by a vocabulary built on the training texts (unknown
words -> `<unk>`, cut to `max_len` tokens), padded to the longest text of the batch and packed
(`pack_padded_sequence`), so the recurrent layer never reads padding; its last hidden state is
classified. The baseline is scikit-learn's logistic regression on word counts, which sees
which words occur but not in what order.

The default corpus is GENERATED (it says so): review sentences with negation ("was not
good"), intensifiers ("really very bad") and contrast ("the plot was dull but the acting was
great": the clause after "but" decides), so word order matters. `--set data_file=texts.csv`
(columns `text`, `label` in positive/negative/neutral) trains on a real corpus instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from labs import ConfigError, Dataset, Lab, Split, SplitConfig, Subject, option, plots, variants
from supervised.text import Vocab, read_labelled_csv, tokenize

CLASSES = ("negative", "neutral", "positive")
SYNTHETIC = "synthetic (generated review sentences; set data_file=texts.csv for a real corpus)"


@dataclass
class Config(SplitConfig):
    data_file: str | None = option(None, "CSV with columns text,label (labels: negative, "
                                         "neutral, positive); none: a generated corpus")
    n_texts: int = option(4000, "sentences in the generated corpus", min=30)
    max_len: int = option(50, "tokens kept per text (longer texts are cut)", min=1)
    min_freq: int = option(1, "a word seen fewer times in training is <unk>", min=1)
    embed: int = option(32, "embedding size", min=1)
    hidden: int = option(64, "recurrent hidden units", min=1)
    dropout: float = option(0.2, "dropout before the output layer", min=0, lt=1)
    epochs: int = option(12, "passes over the training data")
    lr: float = option(3e-3, "learning rate (Adam)")
    grad_clip: float = option(1.0, "clip the gradient's global norm to this (0: off); on by "
                                   "default against exploding recurrent gradients", min=0)

    def validate(self) -> None:
        super().validate()
        if self.data_file:  # a missing file, column or label stops the run before it starts
            read_labelled_csv(self.data_file, CLASSES)


# -- the generated corpus ----------------------------------------------------------------------

POSITIVE = ("good", "great", "excellent", "wonderful", "brilliant", "lovely", "enjoyable", "fun")
NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "poor", "horrible", "weak")
NEUTRAL = ("okay", "average", "long", "ordinary", "short", "predictable")
NOUNS = ("movie", "film", "plot", "acting", "story", "cast", "ending", "script", "music",
         "dialogue")
INTENSIFIERS = ("very", "really", "extremely", "quite", "so", "truly")
NEGATORS = ("not", "never")
FACTS = ("i watched the {n} on sunday", "the {n} lasts two hours", "we saw the {n} yesterday",
         "the {n} came out last year")


def _clause(rng: np.random.Generator, polarity: int) -> tuple[str, bool]:
    """One clause with sentiment `polarity` (-1, 0, +1) and whether it is negated."""
    noun = rng.choice(NOUNS)
    if polarity == 0:
        if rng.random() < 0.3:
            return str(rng.choice(FACTS)).format(n=noun), False
        return f"the {noun} was {rng.choice(NEUTRAL)}", False
    negated = rng.random() < 0.4
    # a negated clause names the opposite word: "not good" is negative
    words = (POSITIVE if (polarity > 0) != negated else NEGATIVE)
    mods = [str(rng.choice(NEGATORS))] if negated else []
    mods += [str(rng.choice(INTENSIFIERS)) for _ in range(rng.choice([0, 0, 1, 2]))]
    return " ".join(["the", str(noun), "was", *mods, str(rng.choice(words))]), negated


def generate(n: int, seed: int) -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, kinds): balanced classes; kind is plain, negated or contrast (two
    clauses joined by "but": the second decides, the first has another polarity)."""
    rng = np.random.default_rng(seed)
    texts, labels, kinds = [], [], []
    for i in range(n):
        label = i % 3  # index into CLASSES: negative, neutral, positive
        polarity = label - 1
        last, negated = _clause(rng, polarity)
        if rng.random() < 0.4:
            other = int(rng.choice([p for p in (-1, 0, 1) if p != polarity]))
            first, _ = _clause(rng, other)
            texts.append(f"{first} but {last}")
            kinds.append("contrast")
        else:
            texts.append(last)
            kinds.append("negated" if negated else "plain")
        labels.append(label)
    order = rng.permutation(n)
    return ([texts[i] for i in order], [labels[i] for i in order], [kinds[i] for i in order])


# -- the model ---------------------------------------------------------------------------------

class RecurrentClassifier(nn.Module):
    """Embedding -> packed LSTM/GRU/RNN -> last hidden state -> class logits.

    Input: (batch, width) token ids padded with 0; each text's length is its count of non-zero
    ids, so a batch needs no separate lengths tensor (and LIME's strings need none either).
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, n_classes: int,
                 cell: str = "lstm", dropout: float = 0.0) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.rnn = rnn(embed, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.long()
        # An empty text (length 0) reads one padding step: its zero embedding, not an error.
        lengths = (x != 0).sum(1).clamp(min=1)
        x = x[:, : int(lengths.max())]  # the batch's own width: no step is all padding
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.rnn(packed)
        h = h[0] if isinstance(h, tuple) else h  # an LSTM returns (h, c)
        return self.out(self.drop(h[-1]))


# -- the lab -----------------------------------------------------------------------------------

class SentimentRNN(Lab):
    """LSTM and GRU classify short texts as positive, negative or neutral, vs a bag of words."""

    lesson = "rnn"
    tags = ("supervised", "rnn", "text")
    explains = "text"
    headline = "lstm_test_acc"
    Config = Config

    vocab: Vocab | None = None

    def texts(self, cfg: Config) -> tuple[list[str], list[int], list[str]]:
        """(texts, labels, kinds) of the whole corpus; kinds are "" for a real corpus."""
        if cfg.data_file:
            texts, labels = read_labelled_csv(cfg.data_file, CLASSES)
            return texts, labels, [""] * len(texts)
        return generate(cfg.n_texts, cfg.seed)

    def data(self, cfg: Config) -> Dataset:
        from sklearn.model_selection import train_test_split

        texts, labels, kinds = self.texts(cfg)
        idx = np.arange(len(texts))
        y = np.asarray(labels)
        strat = y if np.bincount(y).min() >= 3 else None  # tiny real files: no stratifying
        try:
            rest, test = train_test_split(idx, test_size=cfg.test_size, random_state=cfg.seed,
                                          stratify=strat)
            val_frac = cfg.val_size / (1 - cfg.test_size)
            train, val = (train_test_split(rest, test_size=val_frac, random_state=cfg.seed,
                                           stratify=None if strat is None else y[rest])
                          if cfg.val_size > 0 else (rest, None))
        except ValueError as e:
            raise ConfigError(f"cannot split {len(texts)} texts into train/val/test: {e}") \
                from None
        vocab = Vocab.build([texts[i] for i in train], min_freq=cfg.min_freq)
        if self.vocab is None:
            self.vocab = vocab

        def split(ix):
            if ix is None:
                return None
            ids = self.vocab.encode_batch([texts[i] for i in ix], cfg.max_len)
            return Split(torch.from_numpy(ids), torch.from_numpy(y[ix]))

        parts = {"train": train, "val": val, "test": test}
        return Dataset(
            train=split(train), val=split(val), test=split(test), n_classes=len(CLASSES),
            class_names=list(CLASSES),
            extras={"texts": {k: [texts[i] for i in v] for k, v in parts.items()
                              if v is not None},
                    "labels": {k: y[v] for k, v in parts.items() if v is not None},
                    "kinds": {k: [kinds[i] for i in v] for k, v in parts.items()
                              if v is not None},
                    "synthetic": not cfg.data_file})

    def model(self, cfg: Config, data: Dataset) -> dict[str, nn.Module]:
        return {cell: RecurrentClassifier(len(self.vocab), cfg.embed, cfg.hidden,
                                          data.n_classes, cell, cfg.dropout)
                for cell in ("lstm", "gru")}

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        what = SYNTHETIC if data.extras["synthetic"] else f"data_file {cfg.data_file}"
        print(f"sentiment-rnn data: {what}; {len(data.train)} train / {len(data.test)} test "
              f"texts, vocabulary of {len(self.vocab)} tokens")
        bow_pred = bag_of_words(data)
        y_test = data.extras["labels"]["test"]
        bow_acc = float((bow_pred == y_test).mean())

        results = variants.fit_all(run, self.model(cfg, data), data,
                                   loss=nn.CrossEntropyLoss())
        variants.log_table(run, "comparison", results)
        run.figure("curves", variants.curves(results, "val_acc", title="validation accuracy"))
        accs = {name: r.test["acc"] for name, r in results.items()}
        run.figure("accuracy", variants.bars({**accs, "bag of words": bow_acc},
                                             "test accuracy", title=what.split(" (")[0]))
        preds = {name: r.fit.trainer.predict(data.test.x).argmax(-1).cpu().numpy()
                 for name, r in results.items()}
        preds["bag of words"] = bow_pred
        run.figure("confusion", plots.confusion(y_test, preds["lstm"], list(CLASSES)))
        kinds = data.extras["kinds"]["test"]
        if any(kinds):
            run.figure("by_kind", by_kind(preds, y_test, kinds))
        metrics = {f"{name}_test_acc": acc for name, acc in accs.items()}
        metrics["bow_test_acc"] = bow_acc
        metrics["lstm_minus_bow"] = accs["lstm"] - bow_acc
        for kind in sorted(set(kinds) - {""}):
            mask = np.array([k == kind for k in kinds])
            for name, p in (("lstm", preds["lstm"]), ("bow", bow_pred)):
                metrics[f"{name}_acc_{kind}"] = float((p[mask] == y_test[mask]).mean())
        metrics["data"] = "synthetic" if data.extras["synthetic"] else str(cfg.data_file)
        return metrics

    # -- the vocabulary travels with the run -------------------------------------------------
    def save(self, path: Path, models: dict) -> None:
        super().save(path, models)
        self.vocab.save(path / "checkpoints" / "vocab.json")

    def load(self, path: Path, cfg: Config, data: Dataset) -> dict:
        self.vocab = Vocab.load(path / "checkpoints" / "vocab.json")
        return super().load(path, cfg, data)

    def subjects(self, cfg: Config, model, data: Dataset) -> dict[str, Subject]:
        models = model if isinstance(model, dict) else {"": model}
        texts = np.array(data.extras["texts"]["test"], dtype=object)
        labels = data.extras["labels"]["test"]
        return {name: Subject("text", text_predict(m, self.vocab, cfg.max_len), texts,
                              labels=labels, class_names=list(CLASSES))
                for name, m in models.items()}


def text_predict(model: nn.Module, vocab: Vocab, max_len: int, batch: int = 1024):
    """Strings -> class probabilities (numpy), for LIME and for typed-in text."""
    device = next(model.parameters()).device

    def predict(texts) -> np.ndarray:
        model.eval()
        outs = []
        with torch.inference_mode():
            for s in range(0, len(texts), batch):
                ids = torch.from_numpy(vocab.encode_batch(texts[s:s + batch], max_len))
                outs.append(torch.softmax(model(ids.to(device)), -1).float().cpu().numpy())
        return np.concatenate(outs)

    return predict


def bag_of_words(data: Dataset) -> np.ndarray:
    """Test predictions of logistic regression on word counts (trained on train + val)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    t = data.extras["texts"]
    lab = data.extras["labels"]
    fit_texts = t["train"] + t.get("val", [])
    fit_y = np.concatenate([lab["train"], lab.get("val", np.empty(0, dtype=np.int64))])
    vec = CountVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None)
    clf = LogisticRegression(max_iter=2000)
    clf.fit(vec.fit_transform(fit_texts), fit_y)
    return clf.predict(vec.transform(t["test"]))


def by_kind(preds: dict[str, np.ndarray], y: np.ndarray, kinds: list[str]) -> Figure:
    """Test accuracy per model and sentence kind (plain, negated, contrast)."""
    names = sorted(set(kinds))
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(preds)
    for j, (model, p) in enumerate(preds.items()):
        accs = [float((p[m] == y[m]).mean()) for m in
                (np.array([k == kind for k in kinds]) for kind in names)]
        ax.bar(np.arange(len(names)) + j * width, accs, width, label=model)
    ax.set_xticks(np.arange(len(names)) + width * (len(preds) - 1) / 2,
                  [f"{k}\n(n={kinds.count(k)})" for k in names])
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("where word order matters: negation and 'but'")
    return fig
