"""Text to tensors for the recurrent labs: a tokenizer, a vocabulary saved as JSON, padding,
and a reader for a labelled CSV corpus.

Index 0 is the padding token and 1 the unknown token in every vocabulary, so a model can
tell padding apart (`nn.Embedding(padding_idx=0)`, lengths = count of non-zero ids) and a word
it never saw still has an embedding (the `<unk>` one) instead of crashing a lookup.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from labs import ConfigError, DataNotFound

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?.,;]")


def tokenize(text: str, level: str = "word") -> list[str]:
    """Lower-cased words and punctuation (`level="word"`), or characters (`"char"`)."""
    if level == "char":
        return list(text)
    return _WORD.findall(str(text).lower())


class Vocab:
    """Token <-> id, with `<pad>` = 0 and `<unk>` = 1. `level` says how text is tokenized."""

    def __init__(self, tokens: Sequence[str], level: str = "word") -> None:
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', not {level!r}")
        self.level = level
        self.itos = [PAD, UNK] + [t for t in tokens if t not in (PAD, UNK)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], *, level: str = "word", min_freq: int = 1,
              max_size: int | None = None) -> Vocab:
        """The tokens of `texts` seen at least `min_freq` times, most frequent first (ties in
        first-seen order, so the same texts always give the same ids)."""
        counts = Counter(t for text in texts for t in tokenize(text, level))
        tokens = [t for t, c in counts.most_common() if c >= min_freq]
        return cls(tokens[:max_size] if max_size else tokens, level)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """Token ids of `text` (unknown tokens -> 1), cut to the first `max_len`."""
        ids = [self.stoi.get(t, 1) for t in tokenize(text, self.level)]
        return ids[:max_len] if max_len else ids

    def encode_batch(self, texts: Iterable[str], max_len: int) -> np.ndarray:
        """(n, width) int64 ids padded with 0; width = the longest text (<= max_len, >= 1).
        An empty text is a row of padding (length 0): the model decides what that means."""
        rows = [self.encode(str(t), max_len) for t in texts]
        width = max([1, *map(len, rows)])
        out = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, padding dropped."""
        sep = "" if self.level == "char" else " "
        return sep.join(self.itos[i] for i in ids if i != 0)

    def to_json(self) -> str:
        return json.dumps({"level": self.level, "itos": self.itos})

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        d = json.loads(text)
        return cls(d["itos"], d["level"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Vocab:
        if not path.is_file():
            raise DataNotFound(f"no vocabulary at {path}: this run was saved without one")
        return cls.from_json(path.read_text())


def read_labelled_csv(path: str | Path, classes: Sequence[str]) -> tuple[list[str], list[int]]:
    """(texts, class ids) from a CSV with columns `text` and `label` (labels named as in
    `classes`, any case). One-line errors for a missing file, missing columns, unknown labels."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataNotFound(f"data_file {p} does not exist: give a CSV with columns text,label")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in (reader.fieldnames or [])]
            missing = [c for c in ("text", "label") if c not in cols]
            if missing:
                raise ConfigError(f"data_file {p.name} lacks column(s) {', '.join(missing)}; "
                                  f"it has: {', '.join(cols) or 'no header'}")
            key = {c.strip().lower(): c for c in reader.fieldnames}
            rows = [(r[key["text"]] or "", (r[key["label"]] or "").strip().lower())
                    for r in reader]
    except UnicodeDecodeError:
        raise ConfigError(f"data_file {p.name} is not UTF-8 text") from None
    except csv.Error as e:
        raise ConfigError(f"data_file {p.name} is not a readable CSV: {e}") from None
    index = {c.lower(): i for i, c in enumerate(classes)}
    unknown = sorted({lab for _, lab in rows if lab not in index})
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ConfigError(f"data_file {p.name} has unknown label(s) {shown}; labels must be "
                          f"one of {', '.join(classes)}")
    if len(rows) < 10:
        raise ConfigError(f"data_file {p.name} has {len(rows)} rows; at least 10 are needed "
                          f"to split into train and test")
    return [t for t, _ in rows], [index[lab] for _, lab in rows]
