"""Our own deep agents (cartpole-dqn, cartpole-reinforce, cartpole-a2c) on the shared agent
loop: smoke runs with tiny budgets, the env_step axis, best/last checkpoints, `lab eval`,
`--resume` (the step counter and the DQN's replay buffer carried on), the GIF, the Q-learning
resume, and `slow` checks that the agents really learn within about a minute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labs import checkpoint, run

LABS = {"cartpole-dqn": "agents.dqn:CartPoleDQN",
        "cartpole-reinforce": "agents.reinforce:CartPoleReinforce",
        "cartpole-a2c": "agents.a2c:CartPoleA2C"}
# budgets of a few seconds: too short to learn, long enough for every piece to run
TINY = {"cartpole-dqn": dict(total_steps=1200, learning_starts=300, gradient_steps=4,
                             eval_every=400, checkpoint_every=400),
        "cartpole-reinforce": dict(total_steps=1200, episodes_per_update=4, eval_every=400,
                                   checkpoint_every=400),
        "cartpole-a2c": dict(total_steps=1200, eval_every=400, checkpoint_every=400)}
QUIET = dict(track=False, progress=False, eval_episodes=3)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


def test_the_own_agent_labs_are_registered():
    from labs.registry import discover

    labs = discover().labs
    assert {n: labs[n].entry_point for n in LABS if n in labs} == LABS
    for name in LABS:
        assert labs[name].load().lesson == "rl"


@pytest.mark.parametrize("lab", list(LABS))
def test_agent_smoke_logs_env_steps_evaluates_and_checkpoints(lab):
    res = run(lab, explain=False, **TINY[lab], **QUIET)
    m = res.metrics
    assert m["env_steps"] >= 1200 and m["episodes"] > 0
    assert 8 <= m["eval_return"] <= 500 and m["eval_return_std"] >= 0
    rows = [r for r in _rows(res.dir) if r.get("axis") == "env_step"]
    episodes = [r for r in rows if "episode_return" in r]
    assert len(episodes) == m["episodes"]
    assert all(r["episode_return"] == r["episode_length"] for r in episodes)  # CartPole: +1/step
    evals = [r["env_step"] for r in rows if "eval_return" in r]
    assert evals[:3] == sorted(evals[:3]) and evals[0] >= 400 and evals[-1] == m["env_steps"]
    steps = [r["env_step"] for r in rows]
    assert steps == sorted(steps)  # one axis, never going back
    ck = res.dir / "checkpoints"
    best = checkpoint.load(ck / "best.pt", require=("model", "env_step", "eval_return"))
    assert best["eval_return"] == m["best_eval_return"]
    last = checkpoint.load(ck / "last.pt", require=("agent", "env_steps"))
    assert last["env_steps"] == m["env_steps"]
    # the kept agent is the best evaluated one
    kept = checkpoint.load(ck / "model.pt")["model"]
    assert all(np.array_equal(kept[k], v) for k, v in best["model"].items())
    assert (res.dir / "figures" / "returns.png").is_file()


def test_dqn_explains_its_policy_with_lime_and_kernelshap():
    res = run("cartpole-dqn", **TINY["cartpole-dqn"], **QUIET, explain_states=12,
              explain_num_samples=200, explain_samples=2)
    m = res.metrics
    assert m["policy_explained_states"] == 12
    assert -1 <= m["explain_shap_rank_corr"] <= 1 and -1 <= m["policy_shap_rank_corr"] <= 1
    assert np.isfinite(m["explain_deletion_drop"])
    sample = json.loads((res.dir / "explanations" / "sample_0.json").read_text())
    assert list(sample["weights"]) == ["cart position", "cart velocity", "pole angle",
                                       "pole angular velocity"]
    assert sample["class_name"] in ("push left", "push right")
    assert list(sample["shap"]["weights"]) == list(sample["weights"])
    agg = json.loads((res.dir / "explanations" / "policy_features.json").read_text())
    assert sum(a["states"] for a in agg["actions"].values()) == 12
    assert {"policy_features.png", "returns.png"} <= {p.name for p in
                                                     (res.dir / "figures").iterdir()}


def test_same_seed_same_numbers():
    kw = dict(explain=False, **TINY["cartpole-a2c"], **QUIET)
    a, b = run("cartpole-a2c", **kw).metrics, run("cartpole-a2c", **kw).metrics
    c = run("cartpole-a2c", **{**kw, "seed": 1}).metrics
    keep = ("eval_return", "best_eval_return", "episodes")
    assert {k: a[k] for k in keep} == {k: b[k] for k in keep}
    assert a["episodes"] != c["episodes"] or a["eval_return"] != c["eval_return"]


def test_lab_eval_replays_the_kept_agent(cli, runs_dir):
    args = [f"{k}={v}" for k, v in TINY["cartpole-reinforce"].items()] + ["eval_episodes=4"]
    code, _, err = cli("run", "cartpole-reinforce", "--no-track", "--no-explain",
                       *[x for a in args for x in ("--set", a)])
    assert code == 0, err
    (path,) = (runs_dir / "cartpole-reinforce").iterdir()
    code, out, err = cli("eval", path.name)
    assert code == 0, err
    result = json.loads(next(path.glob("eval-*.json")).read_text())["metrics"]
    saved = json.loads((path / "summary.json").read_text())["metrics"]
    for key in ("eval_return", "eval_return_std"):
        assert result[key] == saved[key], key  # the same seeded episodes, the same weights
    assert "eval_return" in out and "eval_return_std" in out


def test_lab_explain_explains_more_states_of_a_saved_agent(cli, runs_dir, tmp_path):
    res = run("cartpole-dqn", explain=False, **TINY["cartpole-dqn"], **QUIET,
              explain_num_samples=100, explain_states=8)
    code, out, err = cli("explain", res.run_id, "--samples", "4")
    assert code == 0, err
    (more,) = (res.dir / "explanations").glob("more-*")
    assert len(list(more.glob("sample_*.json"))) == 4
    assert "explain_shap_rank_corr" in out
    row = tmp_path / "state.csv"
    row.write_text("0.1,0.0,0.05,-0.2\n")
    code, _, err = cli("explain", res.run_id, "--input", str(row))
    assert code == 2 and err.count("\n") == 1 and "cannot encode raw inputs" in err


def test_record_video_writes_an_episode_gif():
    from PIL import Image

    res = run("cartpole-a2c", explain=False, record_video=True, **TINY["cartpole-a2c"],
              **QUIET)
    gif = res.dir / "figures" / "episode.gif"
    (row,) = json.loads((res.dir / "video.table.json").read_text())["rows"]
    with Image.open(gif) as im:
        assert im.n_frames >= 4  # a greedy episode lasts >= 8 steps (every other one drawn)
        assert row[:2] == ["episode.gif", im.n_frames]


def test_dqn_resume_carries_the_step_counter_and_the_replay_buffer(runs_dir, cli,
                                                                   monkeypatch):
    from agents.common import AgentLoop

    real = AgentLoop.advance

    def killed_at_700(self, n):
        stop = real(self, n)
        if self.env_steps == 700:
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(AgentLoop, "advance", killed_at_700)
    with pytest.raises(KeyboardInterrupt):
        run("cartpole-dqn", explain=False, **TINY["cartpole-dqn"], **QUIET)
    monkeypatch.setattr(AgentLoop, "advance", real)
    (path,) = (runs_dir / "cartpole-dqn").iterdir()
    last = checkpoint.load(path / "checkpoints" / "last.pt")
    assert last["env_steps"] == 700
    replay = last["agent"]["replay"]
    assert isinstance(replay["obs"], np.ndarray) and replay["size"] == 700
    assert replay["obs"].shape == (700, 4) and replay["actions"].dtype == np.int64

    code, _, err = cli("run", "cartpole-dqn", "--resume", path.name, "--no-track")
    assert code == 0, err
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["metrics"]["env_steps"] == 1200  # went on from 700, not from 0
    last = checkpoint.load(path / "checkpoints" / "last.pt")
    assert last["agent"]["replay"]["size"] == 1200  # the old transitions are still there
    np.testing.assert_array_equal(last["agent"]["replay"]["obs"][:700], replay["obs"])
    evals = [r["env_step"] for r in _rows(path) if "eval_return" in r]
    assert evals == sorted(set(evals)) and evals[0] == 400  # none lost, none logged twice


# -- Q-learning --resume ---------------------------------------------------------------------


def test_qlearning_resume_goes_on_from_the_last_qtable(runs_dir, cli, monkeypatch):
    import agents.qlearning as ql

    real = ql.choose
    calls = {"n": 0}

    def choose_then_die(q, s, eps, rng):
        calls["n"] += 1
        if calls["n"] == 900:  # well after episode 40's checkpoint
            raise KeyboardInterrupt
        return real(q, s, eps, rng)

    kw = dict(episodes=120, log_every=20, checkpoint_every=40, eval_episodes=20, track=False)
    monkeypatch.setattr(ql, "choose", choose_then_die)
    with pytest.raises(KeyboardInterrupt):
        run("frozenlake-qlearning", **kw)
    monkeypatch.setattr(ql, "choose", real)
    (path,) = (runs_dir / "frozenlake-qlearning").iterdir()
    last = checkpoint.load(path / "checkpoints" / "last.pt")
    done = last["episode"]
    assert 40 <= done < 120 and last["returns"].shape == (done,)
    assert np.abs(last["q"]).sum() > 0

    code, _, err = cli("run", "frozenlake-qlearning", "--resume", path.name, "--no-track")
    assert code == 0, err
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "completed"
    episodes = [r["episode"] for r in _rows(path) if r.get("axis") == "episode"]
    assert episodes == [20, 40, 60, 80, 100, 120]  # carried on, each block logged once
    steps = [r["env_step"] for r in _rows(path) if r.get("axis") == "episode"]
    assert steps == sorted(steps) and summary["metrics"]["env_steps"] == steps[-1]
    assert checkpoint.load(path / "checkpoints" / "last.pt")["episode"] == 120


# -- learning ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a2c_solves_cartpole_with_its_defaults():
    """A2C with its defaults on seed 0 reaches the solve bar (mean >= 475 over 20 greedy
    evaluation episodes) and stops there: measured at 20k environment steps, 12 s on a busy
    2-core machine."""
    m = run("cartpole-a2c", track=False, explain=False, progress=False).metrics
    assert m["best_eval_return"] >= 475 and m["solved_step"] > 0
    assert m["eval_return"] >= 475  # the kept (best) agent, replayed on the same 20 episodes


@pytest.mark.slow
def test_reinforce_solves_cartpole_with_its_defaults():
    """REINFORCE with a baseline, defaults, seed 0: solved at about 20k steps (5 s busy)."""
    m = run("cartpole-reinforce", track=False, explain=False, progress=False).metrics
    assert m["best_eval_return"] >= 475 and m["eval_return"] >= 475


@pytest.mark.slow
def test_dqn_learns_far_beyond_the_random_agent_within_15k_steps():
    """DQN with its defaults on seed 0 (epsilon still decaying over the 50k budget) reaches an
    evaluation mean >= 150, 7x the random agent's ~21, within 15k environment steps (measured:
    153 at 12.5k; it solves at 30k, ~1 min on an idle 2-core machine: too long for here)."""
    m = run("cartpole-dqn", stop_return=150, track=False, explain=False, progress=False).metrics
    assert m["best_eval_return"] >= 150 and 0 < m["solved_step"] <= 15_000


@pytest.mark.parametrize("lab", ["cartpole-reinforce", "cartpole-a2c"])
def test_policy_gradient_agents_resume_where_they_stopped(lab, runs_dir, cli, monkeypatch):
    from agents.common import AgentLoop

    real = AgentLoop.advance

    def killed_after_600(self, n):
        stop = real(self, n)
        if self.env_steps >= 600 and not getattr(AgentLoop, "_killed", False):
            AgentLoop._killed = True
            raise KeyboardInterrupt
        return stop

    monkeypatch.setattr(AgentLoop, "advance", killed_after_600)
    monkeypatch.setattr(AgentLoop, "_killed", False, raising=False)
    with pytest.raises(KeyboardInterrupt):
        run(lab, explain=False, **TINY[lab], **QUIET)
    (path,) = (runs_dir / lab).iterdir()
    stopped = checkpoint.load(path / "checkpoints" / "last.pt")["env_steps"]
    assert 600 <= stopped < 1200
    code, _, err = cli("run", lab, "--resume", path.name, "--no-track")
    assert code == 0, err
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["metrics"]["env_steps"] >= 1200
    rows = [r for r in _rows(path) if r.get("axis") == "env_step"]
    assert [r["env_step"] for r in rows] == sorted(r["env_step"] for r in rows)
    updates = [r["updates"] for r in rows if "updates" in r]
    assert updates == list(range(1, len(updates) + 1))  # counted on, none logged twice
