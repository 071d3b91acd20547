"""DCGAN: convolutional generator and discriminator on the 8x8 digits (or MNIST's 28x28:
the same stack from side/4, 2x2 or 7x7).

Everything but the two networks is `gan`'s: the non-saturating step with `d_steps`, label
smoothing and Adam betas, the fixed-noise progress figure and GIF, the digits-FID watch
(best checkpoint, stopping, collapse and divergence warnings), `lab sample` and the LIME
subject of the discriminator. The DCGAN recipe at this scale: transposed convolutions with
batch norm and ReLU up from 2x2, a sigmoid output; strided convolutions with leaky ReLU down,
no batch norm on the discriminator's input layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from generative.common import side
from generative.gan import DigitsGAN, GANConfig, Players
from labs import option


@dataclass
class Config(GANConfig):
    channels: int = option(64, "feature maps of the widest convolution (the generator's "
                               "first, the discriminator's last)", min=4)
    epochs: int = option(60, "passes over the training data")
    lr: float = option(2e-3, "learning rate of both players")
    progress_every: int = option(10, "epochs between rows of the progress figure", min=1)
    score_every: int = option(5, "epochs between digits-FID evaluations of 512 samples "
                                 "(also after epoch 1 and the last; 0: never)", min=0)


class DCGAN(Players):
    """`generator`: noise -> 2x2 -> 4x4 -> 8x8 (flat 64 pixels in [0, 1]);
    `discriminator`: 8x8 -> 4x4 -> 2x2 -> one real/fake logit. Another side divisible by 4
    starts from side/4 (MNIST: 7x7 -> 14x14 -> 28x28)."""

    def __init__(self, noise: int, channels: int, side: int = 8):
        super().__init__()
        if side % 4:
            raise ValueError(f"the DCGAN stack needs an image side divisible by 4, not {side}")
        c, s = channels, side // 4
        self.noise, self.side = noise, side
        self.generator = nn.Sequential(
            nn.Linear(noise, c * s * s), nn.Unflatten(1, (c, s, s)), nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.BatchNorm2d(c // 2),
            nn.ReLU(),  # 2s
            nn.ConvTranspose2d(c // 2, 1, 4, stride=2, padding=1),  # 4s: the side
            nn.Flatten(), nn.Sigmoid())
        self.discriminator = nn.Sequential(
            nn.Unflatten(1, (1, side, side)),
            nn.Conv2d(1, c // 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 2s
            nn.Conv2d(c // 2, c, 4, stride=2, padding=1), nn.BatchNorm2d(c),
            nn.LeakyReLU(0.2),  # s
            nn.Flatten(), nn.Linear(c * s * s, 1))


class DigitsDCGAN(DigitsGAN):
    """DCGAN (transposed-conv generator vs conv discriminator) draws 8x8 digits (or MNIST)
    from noise."""

    lesson = "gans"
    tags = ("generative", "gan", "cnn", "images")
    explains = "image"
    headline = "digits_fid"
    Config = Config

    def model(self, cfg: Config, data) -> nn.Module:
        return DCGAN(cfg.noise, cfg.channels, side(data))
