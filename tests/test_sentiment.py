"""sentiment-rnn: tokenizer and vocabulary, packed LSTM/GRU vs a bag of words, a generated
corpus that says so, a CSV corpus, the vocabulary saved with the run and reloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from labs import run
from supervised import sentiment as st
from supervised.text import Vocab, read_labelled_csv, tokenize

TINY = dict(n_texts=150, epochs=2, explain_samples=1, explain_num_samples=40, track=False,
            progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run("sentiment-rnn", runs_dir=tmp_path_factory.mktemp("runs"), **TINY)


def test_tokenizer_and_vocabulary():
    assert tokenize("The movie was NOT good!") == ["the", "movie", "was", "not", "good", "!"]
    v = Vocab.build(["a b b", "b c"])
    assert v.itos[:3] == ["<pad>", "<unk>", "b"]  # padding 0, unknown 1, most frequent next
    assert v.encode("b zzz") == [2, 1]  # an unknown word is <unk>, not an error
    ids = v.encode_batch(["a b c", "", "b " * 500], max_len=7)
    assert ids.shape == (3, 7) and ids[1].sum() == 0 and (ids[2] == 2).all()
    assert Vocab.from_json(v.to_json()).itos == v.itos


def test_generated_corpus_is_balanced_and_has_word_order_cases():
    texts, labels, kinds = st.generate(300, seed=0)
    assert np.bincount(labels).tolist() == [100, 100, 100]
    assert {"plain", "negated", "contrast"} <= set(kinds)
    assert st.generate(300, seed=0)[0] == texts  # deterministic given the seed
    i = kinds.index("contrast")
    assert " but " in texts[i]


def test_model_handles_empty_unknown_and_very_long_texts():
    v = Vocab.build(["good bad okay"])
    model = st.RecurrentClassifier(len(v), 8, 8, 3, "lstm")
    predict = st.text_predict(model, v, max_len=50)
    p = predict(["", "qwerty zzz", "good " * 20000, "!!!"])
    assert p.shape == (4, 3) and np.isfinite(p).all()
    assert np.allclose(p.sum(1), 1, atol=1e-5)


def test_padding_does_not_change_the_prediction():
    """Packing: a text padded wider (in a batch with a longer one) gets the same output."""
    torch.manual_seed(0)
    v = Vocab.build(["the movie was not good at all really"])
    model = st.RecurrentClassifier(len(v), 8, 8, 3, "gru").eval()
    alone = model(torch.from_numpy(v.encode_batch(["not good"], 20)))
    padded = model(torch.from_numpy(v.encode_batch(["not good", "the movie was not good at "
                                                    "all really"], 20)))[:1]
    assert torch.allclose(alone, padded, atol=1e-6)


def test_lstm_has_four_times_a_simple_rnns_parameters():
    from labs.summary import summarize

    counts = {cell: summarize(st.RecurrentClassifier(100, 16, 32, 3, cell).rnn).total
              for cell in ("rnn", "gru", "lstm")}
    assert counts["lstm"] == 4 * counts["rnn"] and counts["gru"] == 3 * counts["rnn"]


def test_smoke_run_says_synthetic_and_saves_its_vocabulary(tiny_run):
    m, d = tiny_run.metrics, tiny_run.dir
    assert m["data"] == "synthetic"
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["metrics"]["data"] == "synthetic"
    for key in ("lstm_test_acc", "gru_test_acc", "bow_test_acc"):
        assert 0 <= m[key] <= 1
    assert m["lstm_minus_bow"] == pytest.approx(m["lstm_test_acc"] - m["bow_test_acc"])
    for fig in ("curves", "accuracy", "confusion", "by_kind"):
        assert (d / "figures" / f"{fig}.png").is_file()
    vocab = json.loads((d / "checkpoints" / "vocab.json").read_text())
    assert vocab["itos"][:2] == ["<pad>", "<unk>"] and "good" in vocab["itos"]
    for name in ("lstm", "gru"):
        assert (d / "checkpoints" / name / "model.pt").is_file()
        assert (d / "explanations" / name / "sample_0.html").is_file()
        assert (d / "explanations" / name / "sample_0.png").is_file()
    assert np.isfinite(m["explain_r2"])
    assert "Param #" in (d / "summary.txt").read_text()


def test_saved_run_answers_typed_text_without_retraining(cli, tiny_run):
    for text in ("the movie was not good", "zzzz qqqq", "good " * 3000):
        code, out, err = cli("explain", str(tiny_run.dir), "--input", text)
        assert code == 0, err
        preds = [line for line in out.splitlines() if line.startswith("prediction:")]
        assert len(preds) == 2 and "[lstm]" in out and "[gru]" in out
        assert any(c in preds[0] for c in st.CLASSES)


def test_reload_uses_the_saved_vocabulary(tiny_run):
    from labs.reload import find_run, restore

    lab_cls, meta, path = find_run(str(tiny_run.dir))
    r = restore(lab_cls, meta, path)
    saved = json.loads((path / "checkpoints" / "vocab.json").read_text())["itos"]
    assert r.lab.vocab.itos == saved
    metrics = r.lab.evaluate(r.cfg, r.models, r.data)
    assert metrics["lstm/test_acc"] == pytest.approx(tiny_run.metrics["lstm_test_acc"])


def test_csv_corpus(tmp_path):
    rows = ["text,label"] + [f"the film was {w},{lab}" for w, lab in
                             [("great", "positive"), ("awful", "negative"),
                              ("long", "neutral")] * 12]
    rows.append('"",neutral')  # an empty text is kept, not a crash
    f = tmp_path / "texts.csv"
    f.write_text("\n".join(rows) + "\n")
    texts, labels = read_labelled_csv(f, st.CLASSES)
    assert len(texts) == 37 and labels[:3] == [2, 0, 1]
    res = run("sentiment-rnn", runs_dir=tmp_path / "runs", data_file=str(f),
              **{**TINY, "explain": False})
    assert res.metrics["data"] == str(f)
    assert not (res.dir / "figures" / "by_kind.png").exists()  # no kinds in a real corpus


@pytest.mark.parametrize("content,fragment", [
    (None, "does not exist"),
    ("words,label\nhi,positive\n", "lacks column(s) text"),
    ("text,label\n" + "hi,positive\n" * 9 + "hi,happy\n", "unknown label(s) 'happy'"),
    ("text,label\nhi,positive\n", "at least 10 are needed"),
])
def test_bad_csv_is_one_line(tmp_path, content, fragment):
    from labs import LabError

    f = tmp_path / "t.csv"
    if content is not None:
        f.write_text(content)
    with pytest.raises(LabError, match=None) as e:
        read_labelled_csv(f, st.CLASSES)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_lstm_beats_the_bag_of_words_where_word_order_matters(tmp_path):
    res = run("sentiment-rnn", runs_dir=tmp_path, track=False, progress=False,
              explain_num_samples=300)
    m = res.metrics
    assert m["lstm_test_acc"] >= 0.95 and m["gru_test_acc"] >= 0.95
    assert m["lstm_test_acc"] >= m["bow_test_acc"] + 0.2
    assert m["lstm_acc_negated"] >= 0.9 and m["bow_acc_negated"] < 0.5
    assert m["explain_deletion_ratio"] > 1.5
