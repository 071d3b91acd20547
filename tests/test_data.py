"""Data: lazy splits batched by `make_loader`, unlabelled data, samples for explanations, and
subjects whose samples are text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explain
from explain import ExplainError, Subject
from labs import datasets
from labs.data import (
    SAMPLE_LIMIT,
    Dataset,
    SeededLoader,
    Split,
    TensorLoader,
    for_eval,
    make_loader,
)


class Counted(torch.utils.data.Dataset):
    """A lazy dataset of (x, y) items that counts how many it was asked for."""

    def __init__(self, n: int = 40, features: int = 4, labelled: bool = True):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, features, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.labelled = labelled
        self.reads = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return (self.x[i], self.y[i]) if self.labelled else self.x[i]


class Corpus(torch.utils.data.Dataset):
    """A lazy text corpus: items are (sentence, label)."""

    words = ("good film", "bad plot", "great cast", "dull")

    def __len__(self) -> int:
        return 1000

    def __getitem__(self, i):
        return self.words[i % 4], i % 2


def order(loader) -> list[float]:
    return [float(v) for x, _ in loader for v in x[:, 0]]


# -- make_loader ---------------------------------------------------------------------------


def test_make_loader_picks_the_loader_by_split_kind():
    lazy = Counted(10)
    loader = make_loader(lazy, 4, device="cpu", seed=1)
    assert isinstance(loader, SeededLoader) and len(loader) == 3
    assert isinstance(make_loader(Split(lazy.x, lazy.y), 4, device="cpu"), TensorLoader)
    with pytest.raises(ValueError, match="collate_fn applies to lazy datasets"):
        make_loader(Split(lazy.x, lazy.y), 4, collate_fn=list)


def test_lazy_loader_shuffles_by_seed_and_epoch_only():
    data = Counted(40)
    a = make_loader(data, 8, device="cpu", seed=3)
    b = make_loader(data, 8, device="cpu", seed=3)
    a.set_epoch(2)
    first = order(a)
    torch.manual_seed(123)  # the global generator does not change the order
    b.set_epoch(2)
    assert order(b) == first and order(a) == first  # same epoch, same order, every pass
    a.set_epoch(3)
    assert order(a) != first and sorted(order(a)) == sorted(first)
    fixed = make_loader(data, 8, device="cpu", shuffle=False)
    assert order(fixed) == [float(v) for v in data.x[:, 0]]


def test_lazy_loader_passes_collate_fn_and_unlabelled_items():
    def pad(items):
        return torch.stack(items), torch.tensor([len(items)] * len(items))

    x, lengths = next(iter(make_loader(Counted(6, labelled=False), 4, collate_fn=pad)))
    assert x.shape == (4, 4) and lengths.tolist() == [4, 4, 4, 4]
    batch = next(iter(make_loader(Counted(6, labelled=False), 4)))
    assert isinstance(batch, torch.Tensor) and batch.shape == (4, 4)


def test_resuming_on_a_lazy_split_is_bit_identical():
    """4 epochs straight == 2 epochs, checkpoint, a new trainer, 2 more epochs."""
    from labs.trainer import Trainer, seed_everything

    def trainer():
        seed_everything(0)
        net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 2))
        return Trainer(net, torch.optim.SGD(net.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                       epochs=4)

    data = Counted(40)
    straight = trainer()
    straight.fit(make_loader(data, 8, seed=5))
    first = trainer()
    first.epochs = 2
    first.fit(make_loader(data, 8, seed=5))
    state = first.state_dict()
    seed_everything(99)  # a new process starts from other random state
    resumed = trainer()
    resumed.load_state_dict(state)
    resumed.fit(make_loader(data, 8, seed=5))
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert resumed.evaluate(make_loader(data, 16, shuffle=False)) == \
        straight.evaluate(make_loader(data, 16, shuffle=False))
    # for_eval: a lazy split as ordered batches, an in-memory one as it is
    in_memory = Split(data.x, data.y)
    assert for_eval(in_memory, 16) is in_memory
    assert straight.evaluate(for_eval(data, 7)) == \
        pytest.approx(straight.evaluate(in_memory), rel=1e-6)


# -- lazy datasets and their metadata --------------------------------------------------------


def test_a_dataset_of_lazy_splits_knows_its_shape_and_samples_a_few_items():
    train, test = Counted(600), Counted(500)
    data = Dataset(train=train, test=test, n_classes=2, class_names=["neg", "pos"],
                   feature_names=list("abcd"))
    assert data.input_shape == (4,) and data.n_features == 4 and data.supervised
    test.reads = 0
    x, y = data.sample("test")
    assert x.shape == (SAMPLE_LIMIT, 4) and x.dtype == np.float32 and y.shape == (SAMPLE_LIMIT,)
    assert test.reads == SAMPLE_LIMIT  # never the whole split
    np.testing.assert_array_equal(x, test.x[:SAMPLE_LIMIT].numpy())
    xs, _ = data.sample("test", 5, seed=1)
    xs2, _ = data.sample("test", 5, seed=1)
    np.testing.assert_array_equal(xs, xs2)
    assert not np.array_equal(xs, x[:5])
    with pytest.raises(ValueError, match="no val split"):
        data.sample("val")


def test_default_subject_reads_a_few_items_of_a_lazy_split():
    from labs.explaining import TRAIN_SAMPLE, default_subject

    train, test = Counted(5000), Counted(3000)
    data = Dataset(train=train, test=test, n_classes=2)
    train.reads = test.reads = 0
    net = nn.Linear(4, 2)
    subject = default_subject("tabular", net, data, cfg=None)
    # input_shape reads one more training item
    assert test.reads == SAMPLE_LIMIT and train.reads == TRAIN_SAMPLE + 1
    assert subject.samples.shape == (SAMPLE_LIMIT, 4) and subject.train.shape == (TRAIN_SAMPLE, 4)
    report = explain.explain(subject, None, n=1, num_samples=50)
    assert len(report.explanations) == 1
    image = default_subject("image", net, data, cfg=None, samples=np.zeros((2, 4), np.float32))
    assert image.train is None and image.labels is None and len(image.samples) == 2


def test_a_text_corpus_samples_as_strings():
    data = Dataset(train=Corpus(), test=Corpus(), n_classes=2)
    x, y = data.sample("test", 3)
    assert x.dtype == object and list(x) == ["good film", "bad plot", "great cast"]
    assert y.tolist() == [0, 1, 0]


def test_in_memory_sample_is_the_whole_split_unless_told():
    data = datasets.digits(seed=0)
    x, y = data.sample("test")
    assert x.shape == tuple(data.test.x.shape) and y.shape == tuple(data.test.y.shape)
    x3, y3 = data.sample("train", 3, seed=0)
    assert x3.shape == (3, 64) and y3.shape == (3,)


# -- unlabelled data and what scale=True standardizes ----------------------------------------


def test_unlabelled_data_is_first_class():
    x = np.random.default_rng(0).normal(5.0, 2.0, (100, 3))
    data = datasets.from_arrays(x, None, test_size=0.2, val_size=0.1, seed=0)
    assert not data.supervised and data.n_classes == 0 and data.class_names is None
    assert data.train.y is None and data.test.y is None and data.val.y is None
    assert (len(data.train), len(data.val), len(data.test)) == (70, 10, 20)
    batches = list(make_loader(data.train, 32, seed=0))
    assert all(isinstance(b, torch.Tensor) for b in batches)  # x alone, not (x, y)
    assert sum(len(b) for b in batches) == 70
    xs, ys = data.sample("test", 4)
    assert xs.shape == (4, 3) and ys is None
    assert datasets.digits().supervised


def test_scale_standardizes_inputs_only():
    rng = np.random.default_rng(0)
    x = rng.normal(50.0, 10.0, (200, 2))
    y = 3.0 * x[:, 0] + 1000.0  # regression targets in their own units
    data = datasets.from_arrays(x, y, classification=False, seed=0)
    tr = data.train.x.numpy()
    np.testing.assert_allclose(tr.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(tr.std(axis=0), 1.0, atol=1e-4)
    # the targets are untouched: still 3 * raw x1 + 1000
    raw_x1 = tr[:, 0] * data.extras["std"][0] + data.extras["mean"][0]
    np.testing.assert_allclose(data.train.y.numpy(), 3.0 * raw_x1 + 1000.0, rtol=1e-5)
    assert data.train.y.dtype == torch.float32 and data.n_classes == 0


def test_image_data_records_its_brightness():
    assert 0.2 < datasets.digits().brightness < 0.4  # light ink on a dark background
    assert datasets.from_arrays(np.ones((10, 4)), np.arange(10) % 2).brightness is None


# -- subjects with text samples --------------------------------------------------------------


def test_subject_accepts_strings_and_passes_them_to_predict():
    seen = []

    def predict(batch):
        seen.append(batch)
        return np.array([[0.2, 0.8] if "good" in s else [0.9, 0.1] for s in batch])

    s = Subject("text", predict, ["a good film", "a bad plot"], labels=[1, 0])
    assert not s.numeric and s.samples.dtype == object and s.input_shape == ()
    out = s.outputs(s.samples)
    assert out.shape == (2, 2) and list(seen[0]) == ["a good film", "a bad plot"]
    assert Subject("text", predict, np.array(["x", "yy"])).samples.dtype == object


@pytest.mark.parametrize("samples, fragment", [
    ([[1.0, 2.0], [3.0]], "different lengths"),
    (np.array([np.zeros(2), np.zeros(3)], dtype=object), "hold ndarray (ragged inputs?)"),
    ("one string", "a list of strings, not one string"),
    ([], "non-empty batch"),
    (np.zeros(3), "one row? use samples[None]"),
])
def test_bad_samples_are_one_clear_line(samples, fragment):
    with pytest.raises(ExplainError) as e:
        Subject("text", lambda b: b, samples)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_numeric_explainers_refuse_text_samples():
    s = Subject("tabular", lambda b: np.ones((len(b), 2)) / 2, ["a", "b"], train=np.zeros((2, 1)))
    with pytest.raises(ExplainError, match="tabular explainer needs numeric rows"):
        explain.explain(s, None, n=1, num_samples=20)
    s.kind = "image"
    with pytest.raises(ExplainError, match="image explainer needs numeric pixels"):
        explain.explain(s, None, n=1, num_samples=20)


def test_lazy_batches_keep_namedtuples_and_packed_sequences():
    """The lazy loader moved batches with a second, weaker `to_device`: namedtuples and
    PackedSequences broke. There is one now."""
    from collections import namedtuple

    from torch.nn.utils.rnn import pack_sequence

    from labs.data import to_device
    from labs.trainer import to_device as trainer_to_device

    assert to_device is trainer_to_device
    B = namedtuple("B", "x y")
    moved = to_device(B(torch.ones(2), torch.zeros(2)), "cpu")
    assert isinstance(moved, B) and torch.equal(moved.x, torch.ones(2))
    packed = pack_sequence([torch.ones(3), torch.ones(2)])
    assert to_device((packed, torch.zeros(2)), "cpu")[0] is not None
