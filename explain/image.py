"""Image explainer: LIME's LimeImageExplainer over segments (pixel blocks or superpixels).

LIME works on (H, W, 3) images. Each sample is turned into one IN THE MODEL'S INPUT SPACE
(reshaped to image_shape, grayscale repeated to 3 channels), so `hide_color` (the subject's
baseline) is a model-space value, and the classifier function turns the perturbed batch back
(channel 0 for grayscale, reshape / channels-first) and calls `subject.predict` once.
lime, skimage and matplotlib are imported inside functions to keep `import explain` light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from explain.base import Explainer, Explanation, register
from explain.errors import ExplainError
from explain.fidelity import deletion_test, describe_deletion, rank_correlation, true_row
from explain.figures import label_text
from explain.segmentation import relabel, segment, to_unit_rgb
from explain.subject import Subject

# Perturbed images per predict call when batch_size is not set: all of them (one call) unless
# that batch would pass ~256 MB (e.g. 1000 x 224x224x3 float32 is 600 MB).
_BATCH_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ImageLayout:
    """How one model input maps to an (H, W, C) image and back."""

    sample_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    channels_first: bool  # sample is (C, H, W) while image_shape is (H, W, C)

    @property
    def hwc(self) -> tuple[int, int, int]:
        h, w = self.image_shape[:2]
        return h, w, (self.image_shape[2] if len(self.image_shape) == 3 else 1)

    @classmethod
    def of(cls, sample_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
           ) -> ImageLayout:
        sample_shape = tuple(sample_shape)
        if image_shape is None:  # infer only the unambiguous cases
            if len(sample_shape) == 2:
                image_shape = sample_shape
            elif len(sample_shape) == 3 and sample_shape[-1] in (1, 3):
                image_shape = sample_shape
            elif len(sample_shape) == 3 and sample_shape[0] in (1, 3):
                image_shape = (*sample_shape[1:], sample_shape[0])
            else:
                raise ExplainError(f"samples of shape {sample_shape} need image_shape, "
                                   f"e.g. (8, 8) for 64-value digits")
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) not in (2, 3) or (len(image_shape) == 3
                                              and image_shape[2] not in (1, 3)):
            raise ExplainError(f"image_shape must be (H, W), (H, W, 1) or (H, W, 3); "
                               f"got {image_shape}")
        h, w = image_shape[:2]
        c = image_shape[2] if len(image_shape) == 3 else 1
        if sample_shape == image_shape:
            return cls(sample_shape, image_shape, False)
        if c > 1 and sample_shape == (c, h, w):
            return cls(sample_shape, image_shape, True)
        if int(np.prod(sample_shape)) == h * w * c:
            return cls(sample_shape, image_shape, False)
        raise ExplainError(f"a sample has shape {sample_shape} ({int(np.prod(sample_shape))} "
                           f"values) but image_shape {image_shape} needs {h * w * c} values")

    def to_image(self, x: np.ndarray) -> np.ndarray:
        """One sample -> (H, W, C)."""
        return x.transpose(1, 2, 0) if self.channels_first else x.reshape(self.hwc)

    def to_rgb(self, x: np.ndarray) -> np.ndarray:
        """One sample -> (H, W, 3), grayscale repeated; what LIME gets."""
        img = self.to_image(x)
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img

    def from_rgb(self, batch: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) -> (N, *sample_shape): the inverse of to_rgb."""
        if self.hwc[2] == 1:
            batch = batch[..., :1]
        if self.channels_first:
            return batch.transpose(0, 3, 1, 2)
        return batch.reshape((len(batch), *self.sample_shape))


@functools.cache
def _numpy_lime_class():
    """LimeImageExplainer whose perturbation sampler is vectorized.

    lime 0.2.0.1 builds each perturbed image in a Python loop (a deepcopy and one mask per hidden
    segment, under a tqdm bar printed to stderr). This draws the SAME on/off matrix from the same
    random_state (one randint call, first row all on) and builds the images with one numpy
    `where`, so the explanation is identical, several times faster, and silent.
    """
    from lime.lime_image import LimeImageExplainer

    class NumpyLimeImageExplainer(LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples,
                        batch_size=10):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape(
                (num_samples, n_features))
            data[0, :] = 1
            preds = []
            for start in range(0, num_samples, batch_size):
                hidden = data[start:start + batch_size][:, segments] == 0  # (b, H, W)
                preds.append(classifier_fn(np.where(hidden[..., None], fudged_image, image)))
            return data, np.concatenate(preds)

    return NumpyLimeImageExplainer


def _showable(img: np.ndarray) -> np.ndarray:
    """Something imshow accepts without clipping warnings: (H, W) or (H, W, 3) in [0, 1]."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and (img.min() < 0 or img.max() > 1):
        img = to_unit_rgb(img)
    return img


@register("image")
class ImageExplainer(Explainer):
    """LIME image explanations over grid blocks (tiny images) or SLIC superpixels."""

    options = {
        **Explainer.options,
        "segmentation": "auto",  # auto | grid | slic | quickshift | fn((H,W,3) in [0,1]) -> map
        "block": None,           # grid block side in pixels; None: auto_block
        "n_segments": 50,        # SLIC target count
        "compactness": 10.0,     # SLIC colour vs space trade-off
        "sigma": 1.0,            # SLIC pre-smoothing (segmentation only, not the perturbations)
        "batch_size": None,      # perturbed images per predict call; None: all (memory-capped)
        "sampler": "numpy",      # "numpy": vectorized, identical draws; "lime": lime's own loop
        "show": 5,               # segments of each sign highlighted in the figure
    }

    def prepare(self, subject: Subject) -> None:
        if not subject.numeric:
            raise ExplainError("the image explainer needs numeric pixels; these samples are "
                               "text (use a text explainer)")
        self.layout = ImageLayout.of(subject.input_shape, subject.image_shape)
        h, w, c = self.layout.hwc
        b = 0.0 if subject.baseline is None else np.asarray(subject.baseline, dtype=np.float64)
        if np.ndim(b) == 0:
            fill = np.full((h, w, c), float(b))
        elif b.size == subject.input_size:
            fill = self.layout.to_image(b.reshape(subject.input_shape))
        elif b.shape == (c,):
            fill = np.broadcast_to(b, (h, w, c))
        else:
            raise ExplainError(f"baseline of shape {b.shape} fits neither a scalar, one value "
                               f"per channel ({c}) nor one per input value {subject.input_shape}")
        self.fill = np.repeat(fill, 3, axis=2) if c == 1 else np.array(fill)
        if self.opts["sampler"] not in ("numpy", "lime"):
            raise ExplainError(f"sampler must be 'numpy' or 'lime', got {self.opts['sampler']!r}")

    def shown(self, subject: Subject, x: np.ndarray) -> np.ndarray:
        """Sample x as a person should see it (subject.display, else the raw image)."""
        img = self.layout.to_image(np.asarray(x)).reshape(self.layout.image_shape)
        return img if subject.display is None else np.asarray(subject.display(img))

    def segments(self, subject: Subject, x: np.ndarray, seed: int) -> np.ndarray:
        """(H, W) label map of sample x; segmenters see the display image scaled to [0, 1]."""
        method = self.opts["segmentation"]
        h, w, _ = self.layout.hwc
        if callable(method):
            seg = np.asarray(method(to_unit_rgb(self.shown(subject, x))))
        else:
            seg = segment(self.shown(subject, x), method, block=self.opts["block"],
                          n_segments=self.opts["n_segments"],
                          compactness=self.opts["compactness"], sigma=self.opts["sigma"],
                          seed=seed)
        if seg.shape != (h, w):
            raise ExplainError(f"segmentation returned shape {seg.shape}, expected {(h, w)}")
        return relabel(seg)

    def explain_one(self, subject: Subject, i: int, seed: int, num_samples: int) -> Explanation:
        x = np.asarray(subject.samples[i])
        rgb = self.layout.to_rgb(x if x.dtype.kind == "f" else x.astype(np.float32))
        out0 = subject.outputs(x[None])[0]
        target, prob = self.target(subject, out0)
        label = 0 if target is None else target  # regression: LIME's single output column 0

        def classifier(batch: np.ndarray) -> np.ndarray:
            out = subject.outputs(self.layout.from_rgb(batch))
            return out[:, None] if target is None else out

        seg = self.segments(subject, x, seed)
        n_seg = int(seg.max()) + 1
        batch = self.opts["batch_size"] or max(1, min(num_samples, _BATCH_BYTES // rgb.nbytes))
        if self.opts["sampler"] == "numpy":
            cls = _numpy_lime_class()
        else:
            from lime.lime_image import LimeImageExplainer as cls
        # Fresh explainer, integer seed: lime's random_state advances across calls.
        # feature_selection="none": all segments are kept anyway (num_features=n_seg), this only
        # skips lime's extra ridge fit that ranks them. ONE label per call: lime keeps only the
        # last label's score/local_pred.
        lime = cls(random_state=seed, feature_selection="none")
        exp = lime.explain_instance(
            rgb, classifier, labels=(label,), top_labels=None, hide_color=self.fill,
            num_features=n_seg, num_samples=num_samples, batch_size=batch,
            segmentation_fn=lambda _image: seg, random_seed=seed)
        w = np.zeros(n_seg)
        for f, v in exp.local_exp[label]:
            w[f] = v
        # A segment's interpretable value is 1 at the explained image, so its contribution to
        # the output is its weight: the top-k for deletion are the largest weights.
        k = self.deletion_k(n_seg)
        dele = deletion_test(classifier, rgb, self.fill, seg, w, label, k, seed,
                             self.opts["deletion_draws"])
        rank = None
        if subject.true_weights is not None:
            rank = rank_correlation(w, self._true_segment_weights(subject, x, seg, target))
        names = [f"segment_{j}" for j in range(n_seg)]
        return Explanation(
            index=i, kind=self.kind, label=subject.label(i),
            predicted=target, explained_class=target, class_name=subject.class_name(target),
            probability=prob, weights=dict(zip(names, w.tolist(), strict=True)),
            intercept=float(exp.intercept[label]), score=float(exp.score),
            local_pred=float(np.ravel(exp.local_pred)[0]), deletion_k=dele.k,
            deletion_top=dele.top, deletion_random=dele.random,
            deletion_features=[names[f] for f in dele.features], rank_corr=rank,
            arrays={"segments": seg, "sample": x})

    def _true_segment_weights(self, subject, x, seg, target) -> np.ndarray:
        """Ground truth per segment for a linear model: its exact contribution when the segment
        is hidden, sum over its pixels of weight * (value - baseline). (A weight alone would
        credit background pixels that equal the baseline, which hiding cannot change.)"""
        tw = self.layout.to_image(true_row(subject.true_weights, subject.input_size, target)
                                  .reshape(subject.input_shape))
        h, w, c = self.layout.hwc
        fill = self.fill[..., :1] if c == 1 else self.fill
        contrib = (tw * (self.layout.to_image(x) - fill)).sum(axis=2)
        return np.bincount(seg.ravel(), weights=contrib.ravel(), minlength=int(seg.max()) + 1)

    def figure(self, subject: Subject, explanation: Explanation):
        from matplotlib.figure import Figure

        e = explanation
        seg = e.arrays["segments"]
        w = np.array(list(e.weights.values()))
        img = _showable(self.shown(subject, e.arrays["sample"]))
        cmap = "gray" if img.ndim == 2 else None
        fig = Figure(figsize=(9.6, 3.4), layout="constrained")
        ax_img, ax_top, ax_heat = fig.subplots(1, 3)
        truth = "" if e.label is None else f"label {label_text(e.label)} · "
        what = f"pred {e.class_name} ({e.probability:.2f})" if e.explained_class is not None \
            else f"value {e.probability:.3g}"
        ax_img.imshow(img, cmap=cmap)
        ax_img.set_title(f"sample {e.index}: {truth}{what}", fontsize=9)
        # Top positive (green) and negative (red) segments over the image.
        # Segments under 10% of the largest |weight| are LIME noise: not highlighted.
        n, floor = self.opts["show"], 0.1 * float(np.abs(w).max())
        order = np.argsort(-w)
        pos = [f for f in order[:n] if w[f] > floor]
        neg = [f for f in order[::-1][:n] if w[f] < -floor]
        overlay = np.zeros((*seg.shape, 4))
        overlay[np.isin(seg, pos)] = (0.1, 0.75, 0.2, 0.55)
        overlay[np.isin(seg, neg)] = (0.85, 0.1, 0.1, 0.55)
        ax_top.imshow(img, cmap=cmap)
        ax_top.imshow(overlay)
        ax_top.set_title(f"top {n} for (green) / against (red)", fontsize=9)
        lim = float(np.abs(w).max()) or 1.0
        im = ax_heat.imshow(w[seg], cmap="RdYlGn", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=ax_heat, shrink=0.8)
        ax_heat.set_title(f"segment weights · local R² {e.score:.2f}", fontsize=9)
        for ax in (ax_img, ax_top, ax_heat):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(describe_deletion(e.deletion_k, e.deletion_top, e.deletion_random),
                     fontsize=10)
        return fig
