"""The bad-input catalogue: every mistake a user can make on the command line ends in one
`error:` line on stderr and exit code 2, with no traceback, no run directory left behind and
the earlier runs untouched.

To add a case, add a row to CASES: (id, argv, a fragment the error line must contain). In argv,
`{run}` stands for the id of an earlier, completed xor-mlp run; the files of FILES are in the
working directory.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import labs
from labs.errors import ConfigError


def R(*argv: str) -> list[str]:
    """`lab run ...` without W&B."""
    return ["run", *argv, "--no-track"]


FILES = {
    "bad.yaml": "epochs: 3\nhidden: [1,\n",
    "bad.toml": "epochs = = 3\n",
    "list.yaml": "- 1\n- 2\n",
    "neg_lr.yaml": "lr: -1\n",
    "typo.yaml": "hiden: 3\n",
    "c.yaml": "epochs: 3\n",
    "binary.yaml": b"\xff\xfe\x00\x81bad",
    "nocols.csv": "words,label\nhi,positive\n",
    "badlabel.csv": "text,label\n" + "fine,neutral\n" * 10 + "wow,happy\n",
    "churn_cols.csv": "CreditScore,Gender,Age,Tenure,Balance,NumOfProducts,HasCrCard,"
                      "IsActiveMember,EstimatedSalary,Exited\n600,Male,40,3,0,1,1,1,5e4,0\n",
    "garbage.pth": b"\x00\x01 not a checkpoint",
}

_UNAVAILABLE = "mps" if torch.cuda.is_available() else "cuda"

CASES = [
    # values out of range, refused before any work
    ("lr-negative", R("xor-mlp", "--set", "lr=-1"),
     "bad value for 'lr' (--set): -1.0; lr must be > 0"),
    ("lr-zero", R("xor-mlp", "--set", "lr=0"), "lr must be > 0"),
    ("lr-nan", R("xor-mlp", "--set", "lr=nan"), "'lr' (--set): nan; lr must be a finite number"),
    ("lr-inf", R("xor-mlp", "--set", "lr=inf"), "lr must be a finite number"),
    ("lr-minus-inf", R("xor-mlp", "--set", "lr=-inf"), "lr must be a finite number"),
    ("lr-huge", R("xor-mlp", "--set", "lr=1e999"), "lr must be a finite number"),
    ("dropout-1.5", R("digits-mlp", "--set", "dropout=1.5"), "dropout must be in [0, 1)"),
    ("dropout-1", R("digits-mlp", "--set", "dropout=1"), "dropout must be in [0, 1)"),
    ("dropout-negative", R("digits-mlp", "--set", "dropout=-0.1"), "dropout must be in [0, 1)"),
    ("hidden-negative", R("digits-mlp", "--set", "hidden=[-5]"),
     "'hidden' (--set): [-5]; every item of hidden must be >= 1"),
    ("hidden-zero", R("digits-mlp", "--set", "hidden=[0]"), "every item of hidden must be >= 1"),
    ("hidden-one-zero", R("digits-mlp", "--set", "hidden=[64, 0]"), "every item of hidden"),
    ("xor-hidden-zero", R("xor-mlp", "--set", "hidden=0"), "hidden must be >= 1"),
    ("test-size-0", R("digits-mlp", "--set", "test_size=0"), "test_size must be in (0, 1)"),
    ("test-size-1", R("digits-mlp", "--set", "test_size=1"), "test_size must be in (0, 1)"),
    ("test-size-1.5", R("digits-mlp", "--set", "test_size=1.5"), "test_size must be in (0, 1)"),
    ("seed-negative", R("xor-mlp", "--seed", "-1"),
     "'seed' (--seed): -1; seed must be in [0, 4294967295]"),
    ("seed-huge", R("xor-mlp", "--seed", "99999999999999999999999"), "seed must be in [0, "),
    ("seed-2**32", R("xor-mlp", "--set", f"seed={2**32}"), "seed must be in [0, 4294967295]"),
    ("epochs-0", R("xor-mlp", "--epochs", "0"), "'epochs' (--epochs): 0; epochs must be >= 1"),
    ("epochs-negative", R("xor-mlp", "--epochs", "-1"), "epochs must be >= 1"),
    ("batch-size-0", R("xor-mlp", "--set", "batch_size=0"), "batch_size must be >= 1"),
    ("batch-size-negative", R("xor-mlp", "--set", "batch_size=-5"), "batch_size must be >= 1"),
    ("grad-clip-negative", R("xor-mlp", "--set", "grad_clip=-1"), "grad_clip must be >= 0"),
    ("early-stop-negative", R("xor-mlp", "--set", "early_stop=-2"), "early_stop must be >= 0"),
    ("explain-samples-key-negative", R("xor-mlp", "--set", "explain_samples=-3"),
     "explain_samples must be >= 1"),
    ("explain-num-samples-0", R("xor-mlp", "--set", "explain_num_samples=0"),
     "explain_num_samples must be >= 10"),
    ("perceptron-epochs-0", R("perceptron-gates", "--set", "epochs=0"), "epochs must be >= 1"),
    ("perceptron-gate", R("perceptron-gates", "--set", "gates=[AND, MAYBE]"),
     "each item: choose one of AND"),
    # wrong types, choices and keys
    ("epochs-text", R("xor-mlp", "--set", "epochs=many"), "'many' is not int"),
    ("epochs-fraction", R("xor-mlp", "--set", "epochs=2.5"), "is not int"),
    ("seed-fraction", R("xor-mlp", "--seed", "1.5"), "'seed' (--seed): '1.5' is not int"),
    ("lr-text", R("xor-mlp", "--set", "lr=fast"), "is not float"),
    ("amp-maybe", R("xor-mlp", "--set", "amp=maybe"), "is not bool"),
    ("hidden-bad-item", R("digits-mlp", "--set", "hidden=[1,x]"), "is not list[int]"),
    ("hidden-bad-list", R("digits-mlp", "--set", "hidden=[1,"), "is not list[int]"),
    ("hidden-float-item", R("digits-mlp", "--set", "hidden=[1.5]"), "is not list[int]"),
    ("hidden-mapping", R("digits-mlp", "--set", "hidden={a: 1}"), "is not list[int]"),
    ("lr-schedule", R("xor-mlp", "--set", "lr_schedule=linear"),
     "choose one of none, cosine, step"),
    ("activation", R("xor-mlp", "--set", "activation=swish"), "choose one of relu, tanh"),
    ("unknown-key", R("digits-mlp", "--set", "hiden=3"),
     "unknown config key 'hiden' (--set). Did you mean 'hidden'?"),
    ("set-without-value", R("xor-mlp", "--set", "epochs"), "--set expects key=value"),
    ("set-without-key", R("xor-mlp", "--set", "=3"), "--set expects key=value"),
    # devices: blamed on the flag that named them
    ("device-tpu", R("xor-mlp", "--device", "tpu"),
     "'device' (--device): 'tpu'; choose one of auto, cpu, cuda, mps"),
    ("device-set-tpu", R("xor-mlp", "--set", "device=tpu"), "'device' (--set)"),
    ("device-unavailable", R("xor-mlp", "--device", _UNAVAILABLE), "available here"),
    # labs, config files, runs
    ("unknown-lab", R("digit-mlp"), "Did you mean: digits-mlp"),
    ("config-missing", R("xor-mlp", "--config", "missing.yaml"),
     "cannot read config file missing.yaml"),
    ("config-bad-yaml", R("xor-mlp", "--config", "bad.yaml"), "cannot parse config file bad.yaml"),
    ("config-bad-toml", R("xor-mlp", "--config", "bad.toml"), "cannot parse config file bad.toml"),
    ("config-not-mapping", R("xor-mlp", "--config", "list.yaml"), "must hold a mapping"),
    ("config-binary", R("xor-mlp", "--config", "binary.yaml"), "is not UTF-8 text"),
    ("config-bad-value", R("xor-mlp", "--config", "neg_lr.yaml"),
     "'lr' (neg_lr.yaml): -1.0; lr must be > 0"),
    ("config-unknown-key", R("xor-mlp", "--config", "typo.yaml"),
     "unknown config key 'hiden' (typo.yaml)"),
    ("config-is-a-folder", R("xor-mlp", "--config", "."), "cannot read config file"),
    ("resume-unknown", R("xor-mlp", "--resume", "20990101-000000-dead"),
     "no run '20990101-000000-dead'"),
    ("resume-completed", R("xor-mlp", "--resume", "{run}"), "already completed"),
    ("resume-other-lab", R("digits-mlp", "--resume", "xor-mlp/{run}"), "belongs to lab 'xor-mlp'"),
    ("resume-with-config", R("xor-mlp", "--resume", "{run}", "--config", "c.yaml"),
     "drop --config"),
    # text corpora (sentiment-rnn)
    ("text-file-missing", R("sentiment-rnn", "--set", "data_file=nope.csv"),
     "data_file nope.csv does not exist"),
    ("text-file-columns", R("sentiment-rnn", "--set", "data_file=nocols.csv"),
     "lacks column(s) text"),
    ("text-file-label", R("sentiment-rnn", "--set", "data_file=badlabel.csv"),
     "unknown label(s) 'happy'; labels must be one of negative, neutral, positive"),
    # command-line syntax
    ("wandb-mode", R("xor-mlp", "--wandb", "sometimes"), "argument --wandb: invalid choice"),
    ("run-without-name", ["run"], "the following arguments are required: name"),
    ("unknown-flag", R("xor-mlp", "--epochz", "3"), "unrecognized arguments"),
    ("unknown-command", ["fly"], "invalid choice: 'fly'"),
    ("explain-samples-0", ["explain", "{run}", "--samples", "0"], "--samples must be >= 1, got 0"),
    ("explain-samples-negative", ["explain", "{run}", "--samples", "-3"],
     "--samples must be >= 1, got -3"),
    ("explain-samples-text", ["explain", "{run}", "--samples", "abc"], "invalid int value: 'abc'"),
    ("explain-unknown-run", ["explain", "nothing-here"], "no run 'nothing-here'"),
    ("sample-unknown-run", ["sample", "nothing-here"], "no run 'nothing-here'"),
    ("sample-not-generative", ["sample", "{run}"], "lab 'xor-mlp' does not generate samples"),
    ("sample-n-0", ["sample", "{run}", "--n", "0"], "--n must be in [1, 10000], got 0"),
    ("info-unknown-lab", ["info", "xor"], "Did you mean"),
    # a lab's own data file
    ("churn-no-file", R("churn-classifier", "--set", "data_file=nope.csv"),
     "churn data file 'nope.csv' not found"),
    ("churn-missing-column", R("churn-classifier", "--set", "data_file=churn_cols.csv"),
     "churn_cols.csv lacks the column(s) Geography"),
    # transfer learning: weights and earlier runs, checked before a run directory is made
    ("transfer-weights-garbage", R("transfer-cnn", "--set", "backbone=resnet18", "--set",
                                   "weights=garbage.pth"), "is not a PyTorch checkpoint"),
    ("transfer-weights-missing", R("transfer-cnn", "--set", "backbone=vgg11", "--set",
                                   "weights=missing.pth"), "weights=missing.pth: no such file"),
    ("transfer-weights-small", R("transfer-cnn", "--set", "weights=garbage.pth"),
     "weights= is for torchvision backbones"),
    ("transfer-source-run-unknown", R("transfer-cnn", "--set", "source_run=nope"),
     "source_run=nope: no run 'nope'"),
    ("transfer-source-run-no-backbone", R("transfer-cnn", "--set", "source_run={run}"),
     "has no pretrained backbone"),
    ("transfer-warmup", R("transfer-cnn", "--set", "warmup_epochs=30"),
     "warmup_epochs (30) must be < epochs (30)"),
    ("transfer-labels", R("transfer-cnn", "--set", "labels=[1, 200]"), "per class is more than"),
    ("transfer-backbone", R("transfer-cnn", "--set", "backbone=resnet50"), "choose one of small"),
    ("pseudo-threshold", R("pseudo-labeling", "--set", "threshold=1"),
     "threshold must be in (0, 1)"),
    ("pseudo-labels", R("pseudo-labeling", "--set", "labels=[150]"), "leaves no unlabelled"),
    ("strategy-sizes", R("ml-strategy", "--set", "sizes=[5000]"), "sizes go up to 1257"),
    # agents: an environment that does not exist, or that the agent cannot act in
    ("env-unknown", R("cartpole-dqn", "--set", "env_id=Nope-v0"),
     "unknown environment id 'Nope-v0'"),
    ("env-typo", R("cartpole-a2c", "--set", "env_id=CartPole-v9"), "did you mean 'CartPole-v1'"),
    ("dqn-on-pendulum", R("cartpole-dqn", "--set", "env_id=Pendulum-v1"),
     "Pendulum-v1 has a continuous action space"),
    ("reinforce-on-pendulum", R("cartpole-reinforce", "--set", "env_id=Pendulum-v1"),
     "picks one of n discrete actions"),
    ("dqn-batch-over-buffer", R("cartpole-dqn", "--set", "buffer_size=10"),
     "batch_size=64 is larger than buffer_size=10"),
    # SB3 labs: environment, algorithm and hyperparameters, checked before any run directory
    ("sb3-unknown-env", R("cartpole-ppo", "--set", "env_id=CartPol-v1"),
     "unknown environment id 'CartPol-v1' (env_id). Did you mean 'CartPole-v1'"),
    ("sb3-dqn-on-pendulum", R("mountaincar-dqn", "--set", "env_id=Pendulum-v1"),
     "DQN needs a Discrete action space; Pendulum-v1 has Box(-2.0, 2.0, (1,), float32)"),
    ("sb3-sac-on-cartpole", R("pendulum-sac", "--set", "env_id=CartPole-v1"),
     "SAC needs a Box action space; CartPole-v1 has Discrete(2)"),
    ("sb3-unknown-hyperparameter", R("cartpole-ppo", "--set", "hyperparams={n_step: 64}"),
     "unknown hyperparameter 'n_step' for PPO (hyperparams). Did you mean 'n_steps'?"),
    ("sb3-bad-schedule", R("cartpole-ppo", "--set", "learning_rate=lin_fast"),
     "bad value for 'learning_rate': 'lin_fast'; write a number or lin_<number>"),
    ("sb3-bad-activation", R("cartpole-ppo", "--set", "policy_kwargs={activation_fn: swish}"),
     "activation_fn 'swish'; choose one of relu"),
    *[(f"sb3-missing-{extra}", R(lab), f'needs the \'{extra}\' extra ({module} is not '
                                       f'installed): pip install -e ".[{extra}]"')
      for lab, module, extra in (("lunarlander-ppo", "Box2D", "box2d"),
                                 ("pong-ppo", "ale_py", "atari"),
                                 ("halfcheetah-sac", "mujoco", "mujoco"))
      if importlib.util.find_spec(module) is None],
]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A runs folder holding one completed xor-mlp run, and a snapshot of every byte in it."""
    root = tmp_path_factory.mktemp("shared-runs")
    res = labs.run("xor-mlp", epochs=2, explain=False, track=False, runs_dir=root)
    return root, res.run_id, _snapshot(root)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def shared_runs(earlier, monkeypatch, tmp_path):
    root, run_id, before = earlier
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    for name, text in FILES.items():
        path = tmp_path / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    yield run_id
    assert _snapshot(root) == before, "a refused command changed the runs folder"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_runs_alone(cli, shared_runs, argv, fragment):
    code, out, err = cli(*(a.replace("{run}", shared_runs) for a in argv))
    assert code == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    assert fragment in err


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


@pytest.mark.parametrize("name, overrides, fragment", [
    ("xor-mlp", {"lr": -1}, "'lr' (keyword argument): -1.0; lr must be > 0"),
    ("xor-mlp", {"lr": float("nan")}, "lr must be a finite number"),
    ("digits-mlp", {"hidden": [0]}, "every item of hidden must be >= 1"),
    ("digits-mlp", {"dropout": 1.5}, "dropout must be in [0, 1)"),
    ("xor-mlp", {"seed": 2**32}, "seed must be in [0, 4294967295]"),
    ("xor-mlp", {"epochs": 0}, "epochs must be >= 1"),
    ("xor-mlp", {"hiden": 3}, "Did you mean 'hidden'?"),
    ("xor-mlp", {"epochs": "many"}, "is not int"),
    ("mountaincar-dqn", {"env_id": "Pendulum-v1"}, "DQN needs a Discrete action space"),
])
def test_python_api_refuses_the_same_values(shared_runs, name, overrides, fragment):
    with pytest.raises(ConfigError) as e:
        labs.run(name, track=False, **overrides)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_resume_checks_its_overrides_before_touching_the_run(cli, runs_dir):
    res = labs.run("xor-mlp", epochs=2, explain=False, track=False)
    summary = res.dir / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "failed"}))
    before = _snapshot(res.dir)
    for setting, fragment in (("explain_samples=0", "explain_samples must be >= 1"),
                              ("explain_num_samples=-1", "explain_num_samples must be >= 10"),
                              ("device=tpu", "'device' (--set): 'tpu'; choose one of")):
        code, _, err = cli(*R("xor-mlp", "--resume", res.run_id, "--set", setting))
        assert code == 2 and err.count("\n") == 1 and fragment in err
    assert _snapshot(res.dir) == before


def test_refused_value_in_a_real_process(tmp_path):
    """The installed command: one line on stderr, nothing else, and no run directory."""
    proc = subprocess.run([sys.executable, "-m", "labs.cli", "run", "xor-mlp", "--set", "lr=-1",
                           "--no-track"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == "error: bad value for 'lr' (--set): -1.0; lr must be > 0\n"
    assert not (tmp_path / "runs" / "xor-mlp").exists()


def test_a_model_too_large_for_memory_is_one_line_and_a_failed_run(cli, runs_dir):
    # 10**12 hidden units: 256 TB of weights, refused by the allocator at once (never filled)
    code, _, err = cli(*R("digits-mlp", "--set", "hidden=[1000000000000]", "--no-explain"))
    assert code == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("error: out of memory on cpu: the lab asked for") and "GiB" in last
    (d,) = (runs_dir / "digits-mlp").iterdir()
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "failed" and "allocate" in summary["error"]


def test_samples_below_one_is_refused_by_the_cli_before_any_folder(cli, runs_dir):
    res = labs.run("xor-mlp", epochs=2, explain=False, track=False)
    for n in ("0", "-3"):
        code, _, err = cli("explain", res.run_id, "--samples", n)
        assert code == 2 and f"--samples must be >= 1, got {n}" in err
    assert not any((res.dir / "explanations").iterdir())



@pytest.mark.parametrize("message, size", [
    ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
     "you tried to allocate 25600000000 bytes. Error code 12 (Cannot allocate memory)",
     "23.8 GiB (25,600,000,000 bytes)"),
    ("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)",
     "20.00 GiB"),
    ("MPS backend out of memory (MPS allocated: 1 GB). Tried to allocate 256 bytes on shared "
     "pool", "256 bytes"),
])
def test_out_of_memory_message_names_the_size(message, size):
    from labs.runner import out_of_memory

    assert f"asked for {size};" in out_of_memory(RuntimeError(message), "cuda")
    assert out_of_memory(RuntimeError("shape mismatch")) == ""
    assert out_of_memory(ValueError("out of memory")) == ""


@pytest.mark.parametrize("lab", ["digits-mlp", "digits-cnn", "autoencoder", "vae", "gan"])
def test_an_absent_image_data_set_is_one_line_naming_the_files(cli, runs_dir, tmp_path, lab):
    code, _, err = cli(*R(lab, "--set", "dataset=mnist", "--set", f"data_dir={tmp_path}/none",
                          "--set", "download=false", "--no-explain"))
    assert code == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith(f"error: mnist not found in {tmp_path}/none (download=false): put "
                           "the four MNIST .gz files, unzipped (train-images-idx3-ubyte, ")
    assert last.endswith(f"in {tmp_path}/none/MNIST/raw/, or pass --set data_dir=<folder "
                         "holding MNIST/>")
    (d,) = (runs_dir / lab).iterdir()  # the run that found no data is marked failed
    assert json.loads((d / "summary.json").read_text())["status"] == "failed"


def test_an_unknown_image_data_set_is_refused_before_any_folder(cli, runs_dir):
    code, _, err = cli(*R("digits-cnn", "--set", "dataset=svhn"))
    assert code == 2 and "choose one of digits, mnist, fashion-mnist, cifar10" in err
    assert not runs_dir.exists()
