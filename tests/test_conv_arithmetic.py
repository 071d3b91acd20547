"""`conv-arithmetic`: every number the course gives, by hand and as torch computes it."""

from __future__ import annotations

import numpy as np
import pytest

from supervised import conv_arithmetic as ca


def test_cross_correlation_is_what_torch_computes():
    expected = [[0, 0, 0], [-2, -1, 0], [-1, 1, 2]]
    assert ca.correlate(ca.X, ca.K).tolist() == expected
    assert ca.torch_correlate(ca.X, ca.K).tolist() == expected


def test_convolution_flips_the_kernel():
    from scipy.signal import convolve2d

    out = ca.convolve(ca.X, ca.K)
    assert out.tolist() == [[0, 0, 0], [2, 1, 0], [1, -1, -2]]
    assert np.array_equal(out, convolve2d(ca.X, ca.K, mode="valid"))
    assert np.array_equal(out, ca.correlate(ca.X, np.array([[-1, 0], [0, 1]])))


def test_the_vertical_sobel_kernel_on_the_patch_gives_2():
    assert ca.correlate(ca.PATCH, ca.SOBEL_X).tolist() == [[2]]
    assert ca.torch_correlate(ca.PATCH, ca.SOBEL_X).tolist() == [[2]]


@pytest.mark.parametrize("n,f,mode,stride,size", [
    (4, 2, "valid", 1, 3), (6, 3, "valid", 1, 4), (6, 3, "same", 1, 6), (8, 5, "valid", 1, 4),
    (8, 5, "same", 1, 8), (7, 3, "valid", 2, 3), (6, 3, "same", 2, 3), (28, 5, "valid", 1, 24)])
def test_output_sizes_valid_same_and_stride(n, f, mode, stride, size):
    p = ca.same_padding(f) if mode == "same" else 0
    assert ca.output_size(n, f, p, stride) == size
    if mode == "valid" and stride == 1:
        assert size == n - f + 1
    if mode == "same" and stride == 1:
        assert size == n
    x = np.arange(n * n, dtype=float).reshape(n, n)
    k = np.arange(f * f, dtype=float).reshape(f, f)
    by_hand = ca.correlate(x, k, stride, p)
    assert by_hand.shape == (size, size)
    assert np.array_equal(by_hand, ca.torch_correlate(x, k, stride, p))


def test_pooling():
    assert ca.pool(ca.X, 2, 2, "max").tolist() == [[2, 2], [2, 2]]
    assert ca.pool(ca.X, 2, 2, "avg").tolist() == [[1, 1], [1.75, 1.25]]
    assert ca.pool(ca.X, 2, 1, "max").shape == (3, 3)
    assert ca.global_average(ca.X) == 1.25


def test_worked_examples_agree_with_the_libraries():
    ex = ca.worked_examples()
    assert ca.max_error(ex) == 0.0
    assert ex["sobel_patch"]["by_hand"] == ex["sobel_patch"]["torch"] == 2.0
    assert [r["torch"] for r in ex["output_sizes"]] == [3, 4, 6, 4, 8, 3, 3, 24]


def test_edge_filters_find_a_vertical_and_a_horizontal_edge():
    step = np.zeros((6, 6))
    step[:, 3:] = 1.0  # dark left half, bright right half: one vertical edge
    out = ca.edge_responses(step)
    assert out["Sobel x (vertical edges)"][:, 2:4].min() == 4.0  # both sides of the edge
    assert np.abs(out["Sobel x (vertical edges)"][:, [0, 1, 4, 5]]).max() == 0.0
    assert np.abs(out["Sobel y (horizontal edges)"]).max() == 0.0  # replicated border: no frame
    turned = ca.edge_responses(step.T)
    assert np.array_equal(turned["Sobel y (horizontal edges)"],
                          out["Sobel x (vertical edges)"].T)
