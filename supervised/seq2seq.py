"""A GRU encoder-decoder with additive (Bahdanau) attention translates dates written many ways
("3rd of March 1998", "03.03.1998", "Tue, Mar 3 1998") into ISO format ("1998-03-03").

Characters in, characters out. The encoder is a bidirectional GRU over the input characters
(packed, so padding is never read); at every output step the decoder scores each encoder
state against its own state (e = v . tanh(W s + U h)), attends with the softmax of those
scores, and feeds the weighted context with the previous character to its GRU. Training uses
teacher forcing (the true previous character is fed); decoding feeds the model's own output
back, greedily or with a beam search. The attention weights are the heat map: which input
characters the model read to write each output character.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from labs import (
    Dataset,
    Lab,
    Split,
    SplitConfig,
    Subject,
    option,
    supervised_eval_step,
    supervised_step,
)

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OUT_CHARS = "0123456789-"
EOS, SOS = 1, 2  # output ids: 0 padding, 1 end, 2 start, then the characters
OUT_LEN = 11     # "YYYY-MM-DD" and the end token
SRC_CHARS = " ,./-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SRC = 40     # characters of input read (a longer input is cut)


@dataclass
class Config(SplitConfig):
    n_dates: int = option(8000, "generated (written date, ISO date) pairs", min=50)
    embed: int = option(32, "character embedding size", min=1)
    hidden: int = option(64, "GRU hidden units (the encoder has this per direction)", min=1)
    beam: int = option(3, "beam width of the beam-search decoder", min=1, max=20)
    epochs: int = option(6, "passes over the training data")
    lr: float = option(3e-3, "learning rate (Adam)")
    batch_size: int = option(128, "pairs per gradient step")
    test_size: float = option(0.1, "held-out test fraction", gt=0, lt=1)
    val_size: float = option(0.05, "validation fraction", min=0, lt=1)
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)", min=0)
    explain_samples: int = option(2, "test dates LIME explains after training", min=1)
    explain_num_samples: int = option(300, "LIME perturbations per explanation", min=10)


# -- the data ----------------------------------------------------------------------------------

def _ordinal(d: int) -> str:
    return f"{d}{'th' if 11 <= d % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


FORMATS = (
    lambda d: f"{_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    lambda d: f"{d.day} {MONTHS[d.month - 1][:3].lower()} {d.year}",
    lambda d: f"{DAYS[d.weekday()]}, {MONTHS[d.month - 1]} {_ordinal(d.day)} {d.year}",
    lambda d: f"{DAYS[d.weekday()][:3]}, {MONTHS[d.month - 1][:3]} {d.day} {d.year}",
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    lambda d: f"{d.day}/{d.month}/{d.year}",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    lambda d: f"{MONTHS[d.month - 1].upper()} {d.day} {d.year}",
)


def generate(n: int, seed: int) -> tuple[list[str], list[str]]:
    """(written dates, ISO dates) for random days of 1900-2099, each in a random format."""
    rng = np.random.default_rng(seed)
    start = dt.date(1900, 1, 1).toordinal()
    days = rng.integers(0, dt.date(2099, 12, 31).toordinal() - start + 1, n)
    fmts = rng.integers(0, len(FORMATS), n)
    dates = [dt.date.fromordinal(start + int(k)) for k in days]
    return [FORMATS[f](d) for f, d in zip(fmts, dates, strict=True)], \
        [d.isoformat() for d in dates]


def encode_src(texts, max_len: int = MAX_SRC) -> np.ndarray:
    """(n, width) character ids (0 padding, 1 unknown character), cut to `max_len`."""
    index = {c: i + 2 for i, c in enumerate(SRC_CHARS)}
    rows = [[index.get(c, 1) for c in str(t)[:max_len]] for t in texts]
    out = np.zeros((len(rows), max(1, *map(len, rows))), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def encode_out(isos: list[str]) -> np.ndarray:
    return np.array([[OUT_CHARS.index(c) + 3 for c in s] + [EOS] for s in isos], dtype=np.int64)


def decode_out(ids) -> str:
    chars = []
    for i in ids:
        if int(i) in (0, EOS):
            break
        chars.append(OUT_CHARS[int(i) - 3] if int(i) >= 3 else "?")
    return "".join(chars)


# -- the model ---------------------------------------------------------------------------------

class Seq2Seq(nn.Module):
    """Bidirectional GRU encoder, GRU decoder with additive attention."""

    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        n_out = len(OUT_CHARS) + 3
        self.src_embed = nn.Embedding(len(SRC_CHARS) + 2, embed, padding_idx=0)
        self.encoder = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)  # encoder summary -> first decoder state
        self.out_embed = nn.Embedding(n_out, embed, padding_idx=0)
        self.W = nn.Linear(hidden, hidden, bias=False)       # attention: decoder state
        self.U = nn.Linear(2 * hidden, hidden, bias=False)   # attention: encoder states
        self.v = nn.Linear(hidden, 1, bias=False)
        self.decoder = nn.GRUCell(embed + 2 * hidden, hidden)
        self.out = nn.Linear(hidden + 2 * hidden + embed, n_out)
        never = torch.zeros(n_out, dtype=torch.bool)
        never[[0, SOS]] = True  # padding and <start> are never written
        self.register_buffer("never", never, persistent=False)

    def encode(self, src: torch.Tensor):
        src = src.long()
        lengths = (src != 0).sum(1).clamp(min=1)
        src = src[:, : int(lengths.max())]
        packed = pack_padded_sequence(self.src_embed(src), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        enc, h = self.encoder(packed)
        enc, _ = pad_packed_sequence(enc, batch_first=True, total_length=src.shape[1])
        mask = torch.arange(src.shape[1], device=src.device)[None] < lengths[:, None]
        state = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1)))
        return enc, self.U(enc), mask, state

    def step(self, prev: torch.Tensor, state: torch.Tensor, enc, keys, mask):
        """One decoder step: (logits, new state, attention weights over the input)."""
        e = self.v(torch.tanh(self.W(state)[:, None] + keys)).squeeze(-1)
        attn = torch.softmax(e.masked_fill(~mask, float("-inf")), -1)
        context = torch.bmm(attn[:, None], enc).squeeze(1)
        emb = self.out_embed(prev)
        state = self.decoder(torch.cat([emb, context], -1), state)
        logits = self.out(torch.cat([state, context, emb], -1)).masked_fill(self.never, -1e9)
        return logits, state, attn

    def forward(self, src: torch.Tensor, tgt: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, OUT_LEN, classes) logits: teacher-forced when `tgt` is given, else greedy."""
        enc, keys, mask, state = self.encode(src)
        prev = torch.full((len(src),), SOS, dtype=torch.long, device=src.device)
        logits = []
        for t in range(OUT_LEN):
            out, state, _ = self.step(prev, state, enc, keys, mask)
            logits.append(out)
            prev = tgt[:, t].long() if tgt is not None else out.argmax(-1)
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (batch, OUT_LEN), attention (batch, OUT_LEN, src width))."""
        enc, keys, mask, state = self.encode(src)
        prev = torch.full((len(src),), SOS, dtype=torch.long, device=src.device)
        ids, attns = [], []
        for _ in range(OUT_LEN):
            out, state, attn = self.step(prev, state, enc, keys, mask)
            prev = out.argmax(-1)
            ids.append(prev)
            attns.append(attn)
        return torch.stack(ids, 1), torch.stack(attns, 1)

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, width: int) -> torch.Tensor:
        """(batch, OUT_LEN) ids of the most probable sequence among `width` kept hypotheses."""
        n = len(src)
        enc, keys, mask, state = self.encode(src)
        rep = lambda x: x.repeat_interleave(width, 0)  # noqa: E731 - (n, ...) -> (n*width, ...)
        enc, keys, mask, state = rep(enc), rep(keys), rep(mask), rep(state)
        scores = torch.full((n, width), float("-inf"), device=src.device)
        scores[:, 0] = 0.0  # one live hypothesis at the start, not `width` copies of it
        prev = torch.full((n * width,), SOS, dtype=torch.long, device=src.device)
        seqs = torch.zeros((n * width, 0), dtype=torch.long, device=src.device)
        done = torch.zeros(n * width, dtype=torch.bool, device=src.device)
        for _ in range(OUT_LEN):
            out, state, _ = self.step(prev, state, enc, keys, mask)
            logp = torch.log_softmax(out, -1)
            # a finished hypothesis only extends with padding, at no cost
            logp[done] = float("-inf")
            logp[done, 0] = 0.0
            v = logp.shape[-1]
            total = (scores.reshape(-1, 1) + logp).reshape(n, width * v)
            scores, idx = total.topk(width, -1)
            beam = (idx // v + torch.arange(n, device=src.device)[:, None] * width).reshape(-1)
            prev = (idx % v).reshape(-1)
            seqs = torch.cat([seqs[beam], prev[:, None]], 1)
            state, done = state[beam], done[beam] | (prev == EOS)
        return seqs.reshape(n, width, -1)[:, 0]


def _cross_entropy(out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), tgt.reshape(-1), ignore_index=0)


def teacher_forced(step):
    """A step that feeds the target to the model as well: (src, tgt) -> model(src, tgt)."""
    def run_step(trainer, batch):
        src, tgt = batch
        return step(trainer, (src, tgt, tgt))
    return run_step


# -- the lab -----------------------------------------------------------------------------------

class Seq2SeqAttention(Lab):
    """GRU encoder-decoder with Bahdanau attention turns dates written many ways into ISO."""

    lesson = "rnn"
    tags = ("supervised", "rnn", "seq2seq", "attention", "text")
    explains = "text"
    headline = "test_exact_greedy"
    Config = Config

    def data(self, cfg: Config) -> Dataset:
        texts, isos = generate(cfg.n_dates, cfg.seed)
        n_test = max(1, int(round(cfg.test_size * len(texts))))
        n_val = int(round(cfg.val_size * len(texts)))
        src, tgt = torch.from_numpy(encode_src(texts)), torch.from_numpy(encode_out(isos))
        cut = {"test": slice(0, n_test), "val": slice(n_test, n_test + n_val),
               "train": slice(n_test + n_val, None)}  # generated i.i.d.: the order is random
        return Dataset(
            train=Split(src[cut["train"]], tgt[cut["train"]]),
            test=Split(src[cut["test"]], tgt[cut["test"]]),
            val=Split(src[cut["val"]], tgt[cut["val"]]) if n_val else None,
            extras={"texts": {k: texts[c] for k, c in cut.items()},
                    "isos": {k: isos[c] for k, c in cut.items()}})

    def model(self, cfg: Config, data: Dataset) -> nn.Module:
        return Seq2Seq(cfg.embed, cfg.hidden)

    def run(self, cfg: Config, run) -> dict:
        data = self.data(cfg)
        model = self.model(cfg, data)
        fit = run.fit(model, data, loss=_cross_entropy, step=teacher_forced(supervised_step),
                      eval_step=teacher_forced(supervised_eval_step))
        from labs import plots

        run.figure("curves", plots.curves(fit.history, title="seq2seq-attention "
                                                              "(teacher-forced character "
                                                              "accuracy)"))
        metrics = self.evaluate(cfg, {"": model}, data)
        texts = data.extras["texts"]["test"][:4]
        run.figure("attention", attention_figure(model, texts))
        wrong = self.mistakes(cfg, model, data)
        if wrong:
            run.table("mistakes", ["input", "expected", "greedy"], wrong[:50])
        return metrics

    def evaluate(self, cfg: Config, models: dict, data: Dataset) -> dict:
        """Exact match of the whole ISO date on the test inputs, greedy and beam search."""
        model = next(iter(models.values()))
        model.eval()
        src, want = data.test.x, data.extras["isos"]["test"]
        device = next(model.parameters()).device
        out = {}
        for how in ("greedy", "beam"):
            got = []
            for s in range(0, len(src), 512):
                xb = src[s:s + 512].to(device)
                ids = model.greedy(xb)[0] if how == "greedy" else model.beam_search(xb, cfg.beam)
                got += [decode_out(r) for r in ids.cpu().tolist()]
            out[f"test_exact_{how}"] = float(np.mean([g == w for g, w in
                                                      zip(got, want, strict=True)]))
        return out

    def mistakes(self, cfg, model, data) -> list[list[str]]:
        ids = model.greedy(data.test.x.to(next(model.parameters()).device))[0].cpu().tolist()
        rows = zip(data.extras["texts"]["test"], data.extras["isos"]["test"], ids, strict=True)
        return [[t, w, decode_out(r)] for t, w, r in rows if decode_out(r) != w]

    def subjects(self, cfg: Config, model, data: Dataset) -> dict[str, Subject]:
        net = next(iter(model.values())) if isinstance(model, dict) else model
        return {"": Subject("text", reference_probability(net),
                            np.array(data.extras["texts"]["test"], dtype=object),
                            labels=np.array(data.extras["isos"]["test"], dtype=object),
                            mode="regression")}

    def describe_input(self, cfg: Config, models: dict, data: Dataset, inputs,
                       out_dir: Path) -> list[str]:
        """`lab explain --input`: the translation (greedy and beam) and its attention map."""
        model = next(iter(models.values()))
        text = str(inputs[0])
        device = next(model.parameters()).device
        src = torch.from_numpy(encode_src([text])).to(device)
        greedy = decode_out(model.greedy(src)[0][0].cpu().tolist())
        beam = decode_out(model.beam_search(src, cfg.beam)[0].cpu().tolist())
        fig = attention_figure(model, [text])
        path = out_dir / "attention.png"
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig).print_png(path)
        return [f"translation: {text!r} -> {greedy} (greedy), {beam} (beam {cfg.beam})",
                f"attention map: {path}"]


def reference_probability(model: Seq2Seq):
    """Texts -> probability that the model writes the FIRST text's greedy translation.

    LIME's value to explain: which words of the input make the model write its answer. Both
    LIME and the deletion test put the unperturbed text first in every batch, so the first
    text's translation is the reference the perturbed texts are scored against.
    """
    device = next(model.parameters()).device

    def predict(texts) -> np.ndarray:
        model.eval()
        with torch.inference_mode():
            src = torch.from_numpy(encode_src(list(texts))).to(device)
            ref = model.greedy(src[:1])[0]  # (1, OUT_LEN)
            probs = []
            for s in range(0, len(src), 1024):
                xb = src[s:s + 1024]
                tgt = ref.expand(len(xb), -1)
                logp = torch.log_softmax(model(xb, tgt), -1).gather(-1, tgt[..., None])[..., 0]
                keep = torch.cumsum((tgt == EOS).long(), 1) - (tgt == EOS).long() == 0
                probs.append((logp * keep).sum(1).exp().cpu().numpy())
        return np.concatenate(probs)

    return predict


def attention_figure(model: Seq2Seq, texts: list[str]) -> Figure:
    """Attention heat map per text: output characters (rows) x input characters (columns)."""
    device = next(model.parameters()).device
    src = torch.from_numpy(encode_src(texts)).to(device)
    model.eval()
    ids, attn = model.greedy(src)
    fig = Figure(figsize=(7, 2.6 * len(texts)), layout="constrained")
    axes = fig.subplots(len(texts), 1, squeeze=False)[:, 0]
    for ax, text, row, a in zip(axes, texts, ids.cpu().tolist(), attn.cpu().numpy(),
                                strict=True):
        out = decode_out(row)
        chars = list(str(text)[:MAX_SRC]) or [" "]
        ax.imshow(a[:len(out) + 1, :len(chars)], cmap="viridis", aspect="auto", vmin=0)
        ax.set_xticks(range(len(chars)), chars, fontsize=8)
        ax.set_yticks(range(len(out) + 1), list(out) + ["<end>"], fontsize=8)
        ax.set_title(f"{text!r} -> {out}", fontsize=9)
    return fig
