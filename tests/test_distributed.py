"""Data-parallel runs under torchrun: N CPU processes (gloo) train what one process trains."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from run_helpers import KillAt
from torch import nn

from labs import Split, TensorLoader, distributed, run

TWO = ("--devices", "2", "--device", "cpu", "--no-track", "--no-explain")


def _rows(loader):
    return [y.tolist() for _, y in loader]


def test_shards_split_every_batch_disjointly_and_keep_its_order():
    split = Split(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    whole = TensorLoader(split, 4, seed=3)
    whole.set_epoch(2)
    shards = [distributed.shard(TensorLoader(split, 4, seed=3), rank=r, world_size=2)
              for r in range(2)]
    for s in shards:
        s.set_epoch(2)
    a, b = _rows(shards[0]), _rows(shards[1])
    assert len(a) == len(b) == len(whole) == 3  # every rank takes the same number of steps
    for batch, ra, rb in zip(_rows(whole), a, b):
        assert ra == batch[0::2] and rb == batch[1::2]  # disjoint halves of the global batch
    shards[0].set_epoch(3)
    assert _rows(shards[0]) != a  # reshuffled per epoch, like the loader it wraps


def test_a_rank_past_a_short_last_batch_still_gets_a_row():
    split = Split(torch.zeros(5, 1), torch.arange(5))
    rows = [_rows(distributed.shard(TensorLoader(split, 4, shuffle=False), rank=r,
                                    world_size=3)) for r in range(3)]
    assert [r[-1] for r in rows] == [[4], [4], [4]]  # the 1-row tail, on every rank
    assert [r[0] for r in rows] == [[0, 3], [1], [2]]


def test_a_torch_dataset_is_sharded_with_a_distributed_sampler():
    ds = torch.utils.data.TensorDataset(torch.arange(8).float(), torch.arange(8))
    loaders = [distributed.shard(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True),
                                 rank=r, world_size=2) for r in range(2)]
    seen = []
    for ld in loaders:
        ld.set_epoch(1)
        batches = [y.tolist() for _, y in ld]
        assert [len(b) for b in batches] == [2, 2]  # global batch 4 = 2 ranks x 2
        seen += sum(batches, [])
    assert sorted(seen) == list(range(8))


def test_one_process_is_left_alone():
    model = nn.Linear(2, 2)
    loader = TensorLoader(Split(torch.zeros(4, 2), torch.zeros(4)), 2)
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    assert distributed.shard(loader) is loader
    assert distributed.all_reduce_mean({"loss": 0.5}) == {"loss": 0.5}
    assert distributed.broadcast_object(("id", 1)) == ("id", 1)
    compiled = nn.Module()
    compiled._orig_mod = model  # what torch.compile's wrapper holds
    assert distributed.unwrap(compiled) is model


def test_every_rank_sets_its_thread_count(monkeypatch, tmp_path):
    # a rank > 0 leaves `execute` for `follow` before rank 0 writes config.yaml: it must have
    # applied `threads` by then too (the count changes the order of float sums)
    before = torch.get_num_threads()
    want = 2 if before != 2 else 1
    seen = []
    monkeypatch.setattr(distributed, "on_main", lambda fn, *a, **k: fn(*a, **k))
    monkeypatch.setattr(distributed, "is_main", lambda: False)  # this process plays rank 1
    monkeypatch.setattr(distributed, "follow", lambda *a, **k: seen.append(
        torch.get_num_threads()))
    try:
        run("xor-mlp", runs_dir=tmp_path, track=False, explain=False, threads=want)
    finally:
        torch.set_num_threads(before)
    assert seen == [want]


def test_devices_flag_is_removed_for_the_ranks():
    argv = ["run", "xor-mlp", "--devices", "2", "--epochs", "3", "--devices=4", "--no-track"]
    assert distributed.strip_devices(argv) == ["run", "xor-mlp", "--epochs", "3", "--no-track"]


@pytest.mark.parametrize("argv, message", [
    (("--devices", "0"), "--devices must be at least 1"),
    (("--devices", "2", "--set", "nope=1"), "unknown config key 'nope'"),
])
def test_devices_user_errors_are_one_line(cli, argv, message, runs_dir):
    code, out, err = cli("run", "xor-mlp", *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert not runs_dir.exists()  # nothing was launched


def _model_pt(d):
    return torch.load(d / "checkpoints" / "model.pt", weights_only=True)["model"]


def _train_losses(d):
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def test_two_processes_train_what_one_process_trains(cli, runs_dir):
    """xor-mlp's full batch of 4 rows: 2 ranks x 2 rows with DDP's averaged gradients take the
    same steps as 1 process x 4 rows, up to float error."""
    code, out, err = cli("run", "xor-mlp", *TWO, "--epochs", "25")
    assert code == 0, err
    (ddp,) = (runs_dir / "xor-mlp").iterdir()  # rank 0 alone made a run directory
    one = run("xor-mlp", epochs=25, device="cpu", explain=False, track=False)

    assert yaml.safe_load((ddp / "config.yaml").read_text())["world_size"] == 2
    assert json.loads((ddp / "summary.json").read_text())["status"] == "completed"
    weights = _model_pt(ddp)
    assert set(weights) == set(one.model.state_dict())  # no "module." prefix: reloads anywhere
    for k, v in one.model.state_dict().items():
        assert torch.allclose(weights[k], v, atol=1e-5), k
    last = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)
    one.model.load_state_dict(last["model"])  # a DDP checkpoint loads into a plain model
    best = torch.load(ddp / "checkpoints" / "best.pt", weights_only=True)
    one.model.load_state_dict(best["model"])  # best.pt too (it held "module." keys)
    # the logged training loss is the mean over both ranks' shards: the whole batch's loss
    assert _train_losses(ddp) == pytest.approx(_train_losses(one.dir), abs=1e-5)


def test_a_run_resumes_on_two_processes(cli, runs_dir):
    """Killed in one process at epoch 4, finished on two: every rank loads the checkpoint."""
    full = run("xor-mlp", epochs=12, device="cpu", explain=False, track=False)
    with pytest.raises(KeyboardInterrupt):
        run("xor-mlp", epochs=12, device="cpu", explain=False, track=False,
            callbacks=[KillAt(4)])
    (killed,) = [d for d in (runs_dir / "xor-mlp").iterdir() if d != full.dir]
    code, out, err = cli("run", "xor-mlp", "--resume", killed.name, *TWO)
    assert code == 0, err
    assert len(list((runs_dir / "xor-mlp").iterdir())) == 2  # resumed in place
    for k, v in full.model.state_dict().items():
        assert torch.allclose(_model_pt(killed)[k], v, atol=1e-5), k
    assert _train_losses(killed) == pytest.approx(_train_losses(full.dir), abs=1e-5)


CUSTOM_STEP = '''
import sys, torch
from torch import nn
from labs import Split, TensorLoader, Trainer, distributed
from labs.trainer import seed_everything

distributed.init_from_env()
seed_everything(0)
g = torch.Generator().manual_seed(0)
x = torch.randn(16, 3, generator=g)
y = (x[:, 0] > 0).long()
a, b = nn.Linear(3, 2), nn.Linear(3, 2)
model = nn.ModuleDict({"a": a, "b": b})
opts = {"a": torch.optim.SGD(a.parameters(), 0.1), "b": torch.optim.SGD(b.parameters(), 0.1)}

def step(trainer, batch):  # calls the sub-modules directly, past any wrapper
    x, y = batch
    for name, opt in opts.items():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model[name](x), y)
        trainer.backward(loss)
        trainer.optimizer_step(opt)
    return {"loss": loss.detach()}

net = distributed.wrap_model(model, torch.device("cpu"), opts, custom_step=True)
Trainer(net, opts, metrics=(), epochs=3, step=step).fit(
    distributed.shard(TensorLoader(Split(x, y), 8)))
if distributed.is_main():
    torch.save(model.state_dict(), sys.argv[1])
distributed.cleanup()
'''


@pytest.mark.slow
def test_a_custom_step_with_two_optimizers_averages_gradients(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "gan.py"
    script.write_text(CUSTOM_STEP)
    subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt")], check=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node=2", str(script), str(tmp_path / "two.pt")], check=True)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-5), k
