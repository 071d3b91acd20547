"""seq2seq-attention: generated dates, teacher forcing, greedy vs beam decoding, attention."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from labs import run
from supervised import seq2seq as s2s


def test_dates_are_written_many_ways_and_map_to_iso():
    d = dt.date(1998, 3, 3)
    written = {f(d) for f in s2s.FORMATS}
    assert "3rd of March 1998" in written and "03.03.1998" in written
    assert len(written) == len(s2s.FORMATS)
    assert [s2s._ordinal(k) for k in (1, 2, 3, 11, 12, 13, 21, 22)] == [
        "1st", "2nd", "3rd", "11th", "12th", "13th", "21st", "22nd"]
    texts, isos = s2s.generate(50, seed=1)
    assert all(dt.date.fromisoformat(i) for i in isos) and s2s.generate(50, seed=1)[0] == texts
    assert s2s.decode_out(s2s.encode_out(["1998-03-03"])[0]) == "1998-03-03"


def test_beam_of_width_one_is_greedy_and_wider_beams_score_at_least_as_high():
    torch.manual_seed(0)
    model = s2s.Seq2Seq(8, 16).eval()
    src = torch.from_numpy(s2s.encode_src(["3rd of March 1998", "1/2/2003", "", "x" * 99]))
    greedy, attn = model.greedy(src)
    text = lambda ids: [s2s.decode_out(r) for r in ids.tolist()]  # noqa: E731 - up to <end>
    assert text(model.beam_search(src, 1)) == text(greedy)
    assert attn.shape[:2] == (4, s2s.OUT_LEN)
    assert torch.allclose(attn.sum(-1), torch.ones(4, s2s.OUT_LEN), atol=1e-5)

    def logprob(ids):
        tgt = ids[:, : s2s.OUT_LEN]
        lp = torch.log_softmax(model(src, tgt), -1).gather(-1, tgt[..., None])[..., 0]
        ended = torch.cumsum((tgt == s2s.EOS).long(), 1) - (tgt == s2s.EOS).long() > 0
        return lp.masked_fill(ended, 0).sum(1)  # up to and with the end token

    assert (logprob(model.beam_search(src, 4)) >= logprob(greedy) - 1e-4).all()


def test_smoke_run_and_typed_input(cli, tmp_path):
    res = run("seq2seq-attention", runs_dir=tmp_path / "runs", n_dates=200, epochs=1,
              explain_samples=1, explain_num_samples=30, track=False, progress=False)
    m = res.metrics
    assert 0 <= m["test_exact_greedy"] <= 1 and 0 <= m["test_exact_beam"] <= 1
    assert np.isfinite(m["explain_r2"])
    for fig in ("curves", "attention"):
        assert (res.dir / "figures" / f"{fig}.png").is_file()
    assert (res.dir / "explanations" / "sample_0.html").is_file()
    code, out, err = cli("explain", str(res.dir), "--input", "3rd of March 1998")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "translation:" in x)
    assert "'3rd of March 1998' ->" in line and "(greedy)" in line and "(beam 3)" in line
    maps = list((res.dir / "explanations").glob("more-*/attention.png"))
    assert len(maps) == 1
    code, out, err = cli("eval", str(res.dir))
    assert code == 0 and "test_exact_beam" in out


@pytest.mark.slow
def test_translates_held_out_dates(tmp_path):
    res = run("seq2seq-attention", runs_dir=tmp_path, track=False, progress=False,
              explain=False)
    assert res.metrics["test_exact_greedy"] >= 0.95
    assert res.metrics["test_exact_beam"] >= 0.95
