"""The `train:` section, its presets, and the choices made from the data's size.

`reference` is tensorflow/tpu efficientnet's recipe, exactly (docs/training.md): RMSProp (TF1:
decay 0.9, momentum 0.9, epsilon 1e-3 inside the root, accumulator at ones), base rate 0.016 x batch /
256, 5 warm-up epochs then 0.97 every 2.4 epochs (staircase, from step 0), label smoothing 0.1, L2 1e-5
in the loss, EMA 0.9999 with num_updates, distorted bounding-box crop + flip, batch 2048, 350 epochs.

`small` suits a few thousand small images (the offline digits, a user's folder): Adam at 0.005
(not scaled by batch), 1 warm-up epoch, cosine decay, a milder crop (area 0.35-1: a 32 px image
cropped to 8% holds nothing), batch-norm momentum 0.9 (at 0.99 the moving statistics need ~500 steps
to forget their initial values: longer than a whole small run) and no flip (digits and text are not mirror-symmetric; set `flip: true`
for photographs). Everything else is the reference's (label smoothing, L2, the moving average).

`auto` (the default) takes `reference` from 20,000 training images up, `small` below, and chooses
a batch of about 1/40 of the training set (a power of two, 16..2048) unless given, so that a small
set still gets dozens of steps per epoch. `resolve` returns the concrete recipe and the one line
that says what was chosen.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nas.common.errors import ConfigError
from nas.common.schema import read_section, section_dict, setting

PRESETS = ("auto", "reference", "small")
AUGMENTS = ("none", "randaugment", "autoaugment")
SMALL_DATA = 20_000  # training images below which `auto` takes the small preset
REFERENCE_BATCH = 2048


@dataclass(frozen=True)
class TrainConfig:
    """`train:` in a config file; None means "the preset's value"."""

    preset: str = setting("auto", choices=PRESETS)
    epochs: int | None = setting(None, min=1)
    batch_size: int | None = setting(None, min=1)
    optimizer: str | None = setting(None, choices=("rmsprop", "adam"))
    learning_rate: float | None = setting(None, above=0.0)  # reference: per 256 images (scaled by batch / 256)
    scale_learning_rate: bool | None = None  # multiply by batch / 256 (reference: yes; small: no)
    schedule: str | None = setting(None, choices=("exponential", "cosine"))
    warmup_epochs: float | None = setting(None, min=0.0)
    decay_rate: float = setting(0.97, above=0.0, max=1.0)
    decay_epochs: float = setting(2.4, above=0.0)
    rmsprop_decay: float = setting(0.9, min=0.0, max=1.0)
    momentum: float = setting(0.9, min=0.0, max=1.0)
    epsilon: float | None = setting(None, above=0.0)  # rmsprop 1e-3; adam 1e-7
    label_smoothing: float = setting(0.1, min=0.0, max=0.99)
    weight_decay: float = setting(1e-5, min=0.0)
    ema_decay: float = setting(0.9999, min=0.0, max=1.0)
    crop_min_area: float | None = setting(None, above=0.0, max=1.0)  # reference 0.08
    flip: bool | None = None
    augment: str = setting("none", choices=AUGMENTS)
    randaugment_layers: int = setting(2, min=1)
    randaugment_magnitude: float = setting(10.0, min=0.0, max=10.0)
    mixed_precision: bool = False  # bfloat16 activations, float32 weights (the reference on TPU)
    checkpoint_every: int = setting(1, min=1)  # epochs
    bn_momentum: float | None = setting(None, min=0.0, max=1.0)  # None: the spec's (reference 0.99)
    # Several replicas: batch statistics over the global batch (TPU BN). Off by default: with two logical
    # CPU devices in TF 2.21 / Keras 3.15 the first synchronised step hangs (collectives); untested on GPUs.
    sync_batch_norm: bool = False
    seed: int = setting(0, min=0)


PRESET_VALUES = {
    "reference": dict(epochs=350, optimizer="rmsprop", learning_rate=0.016, scale_learning_rate=True,
                      schedule="exponential", warmup_epochs=5.0, epsilon=1e-3, crop_min_area=0.08, flip=True, bn_momentum=0.99),
    "small": dict(epochs=30, optimizer="adam", learning_rate=0.005, scale_learning_rate=False,
                  schedule="cosine", warmup_epochs=1.0, epsilon=1e-7, crop_min_area=0.35, flip=False, bn_momentum=0.9),
}


@dataclass(frozen=True)
class Recipe:
    """Every value concrete: what the loop runs."""

    config: TrainConfig  # with no None left
    preset: str
    batch_size: int
    steps_per_epoch: int  # full batches only (one traced shape)
    base_lr: float  # after scaling by batch / 256

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    def lr_args(self) -> dict:
        c = self.config
        # The reference's steps_per_epoch is images / batch, a float: keep its decay boundaries.
        return dict(base=self.base_lr, steps_per_epoch=self.images_per_epoch / self.batch_size,
                    total_steps=self.total_steps, kind=c.schedule, warmup_epochs=c.warmup_epochs,
                    decay_rate=c.decay_rate, decay_epochs=c.decay_epochs)

    images_per_epoch: int = 0


def read_train_config(data, overrides: dict) -> TrainConfig:
    config = read_section(TrainConfig, data, "train")
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def auto_batch(images: int) -> int:
    return int(min(REFERENCE_BATCH, max(16, 2 ** math.floor(math.log2(max(1, images / 40))))))


def resolve(config: TrainConfig, train_images: int, replicas: int = 1) -> tuple[Recipe, str]:
    preset = config.preset
    if preset == "auto":
        preset = "reference" if train_images >= SMALL_DATA else "small"
    values = {k: v for k, v in PRESET_VALUES[preset].items() if getattr(config, k) is None}
    config = dataclasses.replace(config, **values)
    batch = config.batch_size or (REFERENCE_BATCH if preset == "reference" and train_images >= 500_000
                                  else auto_batch(train_images))
    batch = max(replicas, batch - batch % replicas)  # an equal share per replica
    if batch > train_images:
        raise ConfigError(f"train.batch_size: {batch} is more than the {train_images} training images")
    base = config.learning_rate * (batch / 256 if config.scale_learning_rate else 1.0)
    recipe = Recipe(config, preset, batch, train_images // batch, base, images_per_epoch=train_images)
    how = "given" if config.batch_size else "chosen for the data"
    line = (f"recipe: {preset} preset{' (auto: ' + format(train_images, ',') + ' training images)' if config.preset == 'auto' else ''}; "
            f"batch {batch} ({how}), {recipe.steps_per_epoch} steps/epoch, {config.epochs} epochs; "
            f"{config.optimizer} lr {base:.4g}, {config.schedule} schedule, {config.warmup_epochs:g} warm-up epochs; "
            f"label smoothing {config.label_smoothing:g}, L2 {config.weight_decay:g}, EMA {config.ema_decay:g}"
            + (f"; {config.augment}" if config.augment != "none" else ""))
    return recipe, line


def recipe_dict(recipe: Recipe) -> dict:
    """What the run records (and a resume must match)."""
    return {"preset": recipe.preset, "batch_size": recipe.batch_size, **section_dict(recipe.config)}
