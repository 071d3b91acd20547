"""Tests of explain/: LIME explanations and fidelity numbers on models whose truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

import explain
from explain import ExplainError, Subject
from explain.segmentation import segment

# 8x8 images in 2x2 grid blocks: segments are numbered row by row, 4 per row, so the
# top-left 4x4 pixel block is segments {0, 1, 4, 5}.
TOP_LEFT = {"segment_0", "segment_1", "segment_4", "segment_5"}


def block_model(x: np.ndarray) -> np.ndarray:
    """Class-1 probability = sigmoid of the top-left 4x4 pixel sum only (centred at 8)."""
    s = x.reshape(len(x), 8, 8)[:, :4, :4].sum(axis=(1, 2))
    p1 = 1.0 / (1.0 + np.exp(-0.5 * (s - 8.0)))
    return np.stack([1.0 - p1, p1], axis=1)


def block_subject(**kw) -> Subject:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 64)).astype(np.float32)
    return Subject("image", block_model, x, labels=np.array([1, 1, 0, 1]), image_shape=(8, 8),
                   **kw)


W6 = np.array([3.0, -2.2, 1.4, -0.8, 0.4, 0.1])  # distinct |weights|
SCALES = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.2])  # features on different scales


def linear_subject(mode="classification", **kw) -> Subject:
    rng = np.random.default_rng(1)
    train = rng.normal(0, 1, (300, 6)) * SCALES

    def logistic(x):
        p = 1.0 / (1.0 + np.exp(-(x @ W6)))
        return np.stack([1 - p, p], axis=1)

    predict = logistic if mode == "classification" else (lambda x: x @ W6 + 1.0)
    return Subject("tabular", predict, train[:4], train=train, mode=mode, true_weights=W6,
                   feature_names=[f"f{j}" for j in range(6)], **kw)


# -- torch_predict --------------------------------------------------------------------------
def test_torch_predict_matches_forward_pass_in_small_batches():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    model.train()
    x = np.random.default_rng(0).normal(size=(50, 64)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    probs = explain.torch_predict(model, batch_size=7)(x)  # 8 batches, the last partial
    assert probs.shape == (50, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), -1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(explain.torch_predict(model, softmax=False)(x), logits, atol=1e-6)
    assert model.training  # its mode is put back


def test_torch_predict_reshapes_to_input_shape():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))
    x = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    with torch.no_grad():
        direct = torch.softmax(conv(torch.from_numpy(x).reshape(5, 1, 8, 8)), -1).numpy()
    np.testing.assert_allclose(explain.torch_predict(conv, input_shape=(1, 8, 8))(x), direct,
                               atol=1e-6)


def test_torch_predict_on_cuda_returns_numpy_like_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 10))
    x = np.random.default_rng(0).normal(size=(3000, 64)).astype(np.float32)
    cpu = explain.torch_predict(model)(x)
    gpu = explain.torch_predict(model.cuda(), batch_size=1024)(x)  # device: its parameters'
    assert isinstance(gpu, np.ndarray)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


# -- image ----------------------------------------------------------------------------------
def test_image_explainer_finds_the_block_that_decides(tmp_path):
    # Ground truth per pixel: weight 1 on the top-left block (the logit is linear in it).
    truth = np.zeros((8, 8))
    truth[:4, :4] = 1.0
    report = explain.explain(block_subject(true_weights=truth.ravel()), tmp_path, n=3)
    assert len(report.explanations) == 3
    for e in report.explanations:
        assert e.explained_class == int(np.argmax(block_model(block_subject().samples[[e.index]])))
        assert e.deletion_k == 4  # ceil(0.2 * 16 segments)
        assert set(e.deletion_features) == TOP_LEFT
        top4 = {name for name, _ in e.ranked()[:4]}
        assert top4 == TOP_LEFT
        assert e.score > 0.8
        assert e.deletion_top > e.deletion_random
        assert e.rank_corr is not None and e.rank_corr > 0.5  # 12 tied zeros cap Spearman
    s = report.summary
    assert s["explain_deletion_ratio"] > 1.5
    assert s["explain_r2"] == pytest.approx(np.mean([e.score for e in report.explanations]))
    assert "explain_rank_corr" in s

    # Files: one PNG + one JSON per explanation, and the report.
    for e in report.explanations:
        assert e.png.exists() and e.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        data = json.loads(e.json.read_text())
        assert {"index", "label", "predicted", "explained_class", "probability", "weights",
                "score", "deletion", "rank_corr", "png"} <= set(data)
        assert set(data["deletion"]) == {"measure", "k", "top", "random", "features"}
        assert len(data["weights"]) == 16
    assert report.figures == {f"sample_{e.index}": e.png for e in report.explanations}
    full = json.loads((tmp_path / "report.json").read_text())
    assert full["summary"]["explain_deletion_ratio"] == pytest.approx(s["explain_deletion_ratio"])

    columns, rows = report.table()
    assert len(rows) == 3 * 16 and all(len(r) == len(columns) for r in rows)
    assert all(type(v) in (int, float, str, type(None)) for r in rows for v in r)
    first = dict(zip(columns, rows[0], strict=True))
    assert first["rank"] == 1 and first["feature"] in TOP_LEFT


def test_image_predict_is_called_once_per_lime_batch_with_baseline_in_input_space():
    calls = []
    base = -3.0  # e.g. "black" after normalization: the fill must be this value, not 0

    def spy(x):
        calls.append(x.copy())
        return block_model(x)

    sub = block_subject(baseline=base)
    sub.predict = spy
    explain.explain(sub, None, n=1, num_samples=500)
    sizes = [len(c) for c in calls]
    assert sizes == [1, 500, 12]  # the sample, all LIME perturbations, deletion (1+1+10)
    original = sub.samples[0]
    for batch in calls[1:]:
        assert batch.shape[1:] == (64,)
        assert np.all((batch == original) | (batch == base))


def test_image_regression_mode():
    def block_sum(x):  # one value per input: the top-left block's sum
        return x.reshape(len(x), 8, 8)[:, :4, :4].sum(axis=(1, 2))

    sub = Subject("image", block_sum, block_subject().samples[:2], image_shape=(8, 8),
                  mode="regression")
    report = explain.explain(sub, None, n=2, num_samples=300)
    for e in report.explanations:
        assert e.explained_class is None and e.score > 0.99  # linear in the segments
        assert set(e.deletion_features) == TOP_LEFT
        assert e.to_dict()["deletion"]["measure"] == "abs_change"
    assert report.summary["explain_deletion_ratio"] > 2


def test_numpy_sampler_gives_the_same_explanation_as_lime_loop():
    sub = block_subject()
    fast = explain.explain(sub, None, n=1, num_samples=300).explanations[0]
    slow = explain.explain(sub, None, n=1, num_samples=300, sampler="lime").explanations[0]
    np.testing.assert_allclose(list(fast.weights.values()), list(slow.weights.values()),
                               atol=1e-6)  # float32 summation order only
    assert fast.score == pytest.approx(slow.score)


def test_grid_segmentation_on_tiny_images_where_quickshift_gives_one_segment():
    pytest.importorskip("lime")
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    from sklearn.datasets import load_digits

    digit = load_digits().images[0] / 16.0
    quickshift = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2,
                                       random_seed=0)  # lime's default
    assert len(np.unique(quickshift(np.repeat(digit[..., None], 3, axis=2)))) == 1
    seg = segment(digit)  # auto -> grid of 2x2 blocks
    assert seg.shape == (8, 8)
    assert sorted(np.unique(seg)) == list(range(16))
    assert len(np.unique(segment(digit, "grid", block=1))) == 64


@pytest.mark.parametrize("shape", [(32, 32, 3), (32, 32, 1), (32, 32)])
def test_slic_segmentation_on_larger_images(shape):
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, shape)  # pure noise: unsmoothed SLIC collapses it to one segment
    img[:16] += 1.0
    seg = segment(img)  # auto -> slic (32 px is not tiny); quickshift would fail on (H, W, 1)
    assert seg.shape == (32, 32)
    labels = np.unique(seg)
    assert len(labels) >= 10 and list(labels) == list(range(len(labels)))  # start at 0
    if len(shape) == 3 and shape[2] == 1:  # grayscale with or without the channel axis: same
        np.testing.assert_array_equal(seg, segment(img[..., 0]))
    assert len(np.unique(segment(img, "quickshift"))) > 1


@pytest.mark.parametrize("sample_shape,image_shape", [((3, 32, 32), (32, 32, 3)),
                                                      ((32, 32), None), ((1024,), (32, 32))])
def test_image_explainer_on_32px_colour_and_grayscale(sample_shape, image_shape):
    def to_hwc(batch):  # the model knows its own layout; explain must undo its reshaping
        if batch.shape[1:] == (3, 32, 32):
            return batch.transpose(0, 2, 3, 1)
        return batch.reshape(len(batch), 32, 32, 1)

    def top_half_brighter(batch):  # class 1 = top half brighter than the bottom half
        img = to_hwc(batch)
        d = img[:, :16].mean(axis=(1, 2, 3)) - img[:, 16:].mean(axis=(1, 2, 3))
        p = 1 / (1 + np.exp(-2 * d))
        return np.stack([1 - p, p], axis=1)

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (1, 32, 32, 3 if len(sample_shape) == 3 else 1))
    img[:, :16] += 1.0
    x = (img.transpose(0, 3, 1, 2) if len(sample_shape) == 3 else img).reshape(1, *sample_shape)
    sub = Subject("image", top_half_brighter, x.astype(np.float32), image_shape=image_shape)
    e = explain.explain(sub, None, n=1, num_samples=300).explanations[0]
    seg = e.arrays["segments"]
    assert seg.shape == (32, 32) and len(e.weights) >= 10
    assert e.explained_class == 1
    for name in e.deletion_features:  # LIME's top segments lie (mostly) in the top half
        rows = np.nonzero(seg == int(name.split("_")[1]))[0]
        assert np.mean(rows < 16) > 0.5
    assert e.deletion_top > 2 * e.deletion_random > 0


# -- tabular --------------------------------------------------------------------------------
def test_tabular_ranks_features_like_a_linear_model(tmp_path):
    report = explain.explain(linear_subject(), tmp_path, n=4)
    assert report.summary["explain_rank_corr"] >= 0.9
    assert report.summary["explain_deletion_ratio"] > 1.5
    e = report.explanations[0]
    assert list(e.weights) == [f"f{j}" for j in range(6)]
    assert e.png.exists() and json.loads(e.json.read_text())["weights"].keys() == e.weights.keys()
    # The explained class's weights carry the model's signs (negated for class 0).
    sign = 1 if e.explained_class == 1 else -1
    assert np.all(np.sign(list(e.weights.values()))[:5] == sign * np.sign(W6[:5]))


def test_tabular_regression_weights_and_score():
    report = explain.explain(linear_subject("regression"), None, n=2)
    for e in report.explanations:
        assert e.explained_class is None and e.class_name is None
        assert e.score > 0.99  # a linear model is fitted exactly
        # Continuous weights are per training std: w_j * std_j.
        std = linear_subject().train.std(axis=0)
        np.testing.assert_allclose(list(e.weights.values()), W6 * std, rtol=0.05, atol=0.02)
    assert report.summary["explain_rank_corr"] == pytest.approx(1.0)
    assert report.summary["explain_deletion_ratio"] > 1


def test_tabular_discretized_and_per_class_true_weights():
    sub = linear_subject()
    sub.true_weights = np.stack([-W6, W6])  # one row per class
    report = explain.explain(sub, None, n=2, discretize_continuous=True, figures=False)
    assert report.summary["explain_r2"] > 0
    assert all(e.rank_corr is not None for e in report.explanations)


# -- repeatability --------------------------------------------------------------------------
@pytest.mark.parametrize("make", [block_subject, linear_subject])
def test_same_seed_same_weights(make):
    a = explain.explain(make(), None, n=2, num_samples=300, seed=3)
    b = explain.explain(make(), None, n=2, num_samples=300, seed=3)
    c = explain.explain(make(), None, n=2, num_samples=300, seed=4)
    for ea, eb in zip(a.explanations, b.explanations, strict=True):
        assert ea.weights == eb.weights and ea.score == eb.score
        assert ea.deletion_random == eb.deletion_random
    assert a.explanations[0].weights != c.explanations[0].weights
    # Sample 1 alone (indices) is explained as in the run of n=2: seed + sample index.
    d = explain.explain(make(), None, indices=[1], num_samples=300, seed=3)
    assert d.explanations[0].weights == a.explanations[1].weights


# -- errors ---------------------------------------------------------------------------------
def test_unknown_kind_names_the_known_kinds():
    sub = Subject("audio", block_model, np.zeros((1, 64)))
    with pytest.raises(ExplainError, match="known kinds: image, tabular"):
        explain.explain(sub, None)
    assert {"image", "tabular"} <= set(explain.explainer_kinds())


def test_wrong_sample_shape_is_one_clear_line():
    sub = Subject("image", block_model, np.zeros((2, 63), np.float32), image_shape=(8, 8))
    with pytest.raises(ExplainError) as info:
        explain.explain(sub, None)
    msg = str(info.value)
    assert "\n" not in msg and "(63,)" in msg and "(8, 8)" in msg


@pytest.mark.parametrize("build,match", [
    (lambda: explain.explain(block_subject(), None, colour="red"), "unknown option"),
    (lambda: explain.explain(Subject("tabular", block_model, np.zeros((1, 6))), None), "train"),
    (lambda: explain.explain(Subject("image", lambda x: x[:, 0], np.zeros((1, 64)),
                                     image_shape=(8, 8)), None), r"\(N, C\)"),
    (lambda: explain.explain(block_subject(), None, indices=[9]), "out of range"),
    (lambda: Subject("image", block_model, np.zeros(64)), "batch"),
    (lambda: explain.explain(block_subject(), None, segmentation="watershed"), "watershed"),
])
def test_user_errors_are_explain_errors(build, match):
    with pytest.raises(ExplainError, match=match):
        build()


def test_register_a_new_kind():
    @explain.register("constant-test")
    class Constant(explain.Explainer):
        def explain_one(self, subject, i, seed, num_samples):
            return explain.Explanation(
                index=i, kind=self.kind, label=None, predicted=0, explained_class=0,
                class_name="0", probability=1.0, weights={"a": 1.0}, intercept=0.0, score=1.0,
                local_pred=1.0, deletion_k=1, deletion_top=0.5, deletion_random=0.0,
                deletion_features=["a"])

    try:
        report = explain.explain(Subject("constant-test", block_model, np.zeros((2, 3))), None)
        assert len(report.explanations) == 2
        assert np.isnan(report.summary["explain_deletion_ratio"])  # random drop 0: undefined
        assert json.loads(report.to_json())["summary"]["explain_deletion_ratio"] is None
    finally:
        from explain.base import _REGISTRY
        _REGISTRY.pop("constant-test")


# -- learning quality -----------------------------------------------------------------------
@pytest.mark.slow
def test_digits_mlp_deletion_ratio_clearly_above_one():
    torch = pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500])
    for _ in range(15):
        for idx in torch.randperm(1500).split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    sub = Subject("image", explain.torch_predict(model), x[1500:], labels=y[1500:],
                  image_shape=(8, 8))
    report = explain.explain(sub, None, n=10, figures=False)
    assert np.mean([e.explained_class == e.label for e in report.explanations]) >= 0.8
    assert report.summary["explain_deletion_ratio"] > 2.0
    assert report.summary["explain_r2"] > 0.4
