"""The proxy task: train a (shrunk) candidate briefly and return its validation top-1 accuracy.

MNAS trains each sampled model for 5 epochs on a proxy of ImageNet; here the proxy is whatever
the config says (`proxy:` resolution, width multiplier, epochs) on whatever data source it names.
The candidate is built by the project's one Keras builder from a copy of its spec with the proxy's
resolution, `width * proxy.width` and the data's class count; latency is *not* measured here: the
search predicts it for the full-size spec.

Training is a plain loop (one traced step function, Adam or SGD with Nesterov momentum applied by the
trainer's optimiser step, `nas.train.optim.Optimizer`, one fused update op per variable, cosine-decayed
learning rate) rather than `model.fit`: on a 2-core CPU,
tracing Keras's fit/evaluate functions and optimizer costs several times more than the few epochs
of actual training. Adam is the default: in two-epoch proxies it ranks architectures far more
repeatably than SGD (the same architecture's accuracy moved by at most 0.05 between seeds with Adam,
by up to 0.2 with SGD, on the default search's proxy). Drop-connect is off
(a few epochs are too short for stochastic depth to pay off). Before validation the batch-norm
statistics are recomputed on a fixed batch of training images: after a few dozen steps the moving
averages (momentum 0.99) still mostly hold their initial values, and evaluating with them would
measure the statistics' lag rather than the architecture.

Data: the training images come from the in-memory arrays (the default; normalised once per
mean/std and cached) or, for a streamed data set (`data.stream`), from `TrainStream.batches`, a
tf.data pipeline over the TFRecords that yields uint8 batches in an order fixed by the seed,
normalised here by the same float32 arithmetic on the training device. Both feed the same step
function with the same learning-rate schedule. A streamed data set recalibrates batch norm on its
fixed first training records (held in memory) and normalises validation batch by batch (a 224-px
float copy of 50K validation images would take 30 GB).

Seeds: `keras.utils.set_random_seed(seed)` and the builder's initialiser seed make a trial
repeatable; with `deterministic` TensorFlow's ops are made deterministic too. Memory stays flat
across trials: every trial's graph, model and session are released before the next one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from nas.data import Dataset, normalize
from nas.common.errors import ConfigError
from nas.common.schema import setting
from search_space.spec import ModelSpec

CALIBRATION_IMAGES = 256
OPTIMIZERS = ("sgd", "adam")
ADAM_EPSILON = 1e-7


@dataclass(frozen=True)
class ProxyConfig:
    """`proxy:` in a search config."""

    resolution: int | None = setting(32, min=8)  # null: the skeleton's own resolution
    width: float = setting(0.25, above=0.0)  # multiplies the candidate's width
    epochs: int = setting(2, min=1)
    batch_size: int = setting(64, min=1)
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    learning_rate: float = setting(0.005, above=0.0)  # suits adam; sgd wants about 0.1
    momentum: float = setting(0.9, min=0.0, max=0.999)  # sgd: Nesterov momentum; adam: beta1
    deterministic: bool = True
    # Per-stage strides of the candidate the proxy trains ("1,1,2,1,1,2"; null: the candidate's own).
    # At a small proxy resolution the skeleton's total stride 32 leaves the late stages on 1x1 maps,
    # where no kernel choice can matter; CIFAR variants of mobile networks drop strides for the same
    # reason. Latency is still predicted for the full-size candidate with its own strides.
    strides: str | None = None

    def __post_init__(self) -> None:
        if self.strides is not None:
            parse_strides(self.strides)


def parse_strides(text: str) -> tuple[int, ...]:
    """"1,1,2" -> (1, 1, 2); a ConfigError naming `proxy.strides` otherwise."""
    try:
        strides = tuple(int(part) for part in text.split(","))
    except ValueError:
        strides = ()
    if not strides or any(s not in (1, 2) for s in strides):
        raise ConfigError(f"proxy.strides: expected comma-separated strides of 1 or 2, one per stage, got {text!r}")
    return strides


@dataclass(frozen=True)
class ProxyResult:
    accuracy: float  # validation top-1 in [0, 1]
    train_loss: float  # mean loss over the last epoch
    seconds: float


class TrialFailed(Exception):
    """The candidate could not be trained (NaN loss, ...): recorded, and the search goes on."""


def shrink(spec: ModelSpec, config: ProxyConfig, num_classes: int, include_background: bool) -> ModelSpec:
    """The spec the proxy trains: proxy resolution, width and strides, the data's classes."""
    blocks = spec.blocks
    if config.strides is not None:
        strides = parse_strides(config.strides)
        if len(strides) != len(blocks):
            raise ConfigError(f"proxy.strides: {len(strides)} strides given, the candidate has {len(blocks)} stages")
        blocks = tuple(dataclasses.replace(b, stride=s) for b, s in zip(blocks, strides))
    return dataclasses.replace(
        spec, blocks=blocks, resolution=config.resolution or spec.resolution, width=spec.width * config.width,
        num_classes=num_classes, include_background=include_background and num_classes >= 2,
    )


def _normalise(images, spec: ModelSpec):
    """uint8 images -> `(x - mean) / std` in float32, as `normalize`, but by TensorFlow on the default
    device (the GPU when there is one), so that only uint8 crosses to it."""
    import tensorflow as tf

    mean, std = (tf.constant(np.asarray(v, np.float32)) for v in (spec.mean, spec.std))
    return (tf.cast(images, tf.float32) - mean) / std


class ProxyTask:
    def __init__(self, config: ProxyConfig, data: Dataset):
        self.config = config
        self.data = data
        self._normalised: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}

    def _inputs(self, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray | None]:
        """Normalised training images (streamed: the recalibration sample) and validation images
        (streamed: None, normalised batch by batch)."""
        key = (spec.mean, spec.std)  # every candidate of a space shares these: normalise once
        if key not in self._normalised:
            streamed = self.data.stream is not None
            self._normalised[key] = (normalize(self.data.train_images, spec.mean, spec.std),
                                     None if streamed else normalize(self.data.val_images, spec.mean, spec.std))
        return self._normalised[key]

    def _memory_batches(self, x_train: np.ndarray, batch: int, steps: int, rng: np.random.Generator):
        """One epoch of in-memory batches: a fresh permutation, full batches only."""
        import tensorflow as tf

        y_train = self.data.train_labels
        order = rng.permutation(len(y_train))
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            yield tf.constant(x_train[idx]), tf.constant(y_train[idx])

    def _stream_batches(self, spec: ModelSpec, batch: int, steps: int, seed: int, epoch: int, deterministic: bool):
        """One epoch of streamed batches, normalised on the training device (the stream moves
        uint8); unreadable records are the data's fault (ConfigError)."""
        import tensorflow as tf

        batches = iter(self.data.stream.batches(batch, seed, epoch, deterministic))
        for s in range(steps):
            try:
                images, labels = next(batches)
            except tf.errors.OpError as exc:
                raise ConfigError(f"data.path: cannot read the TFRecords: {exc.message.splitlines()[0]}") from None
            except StopIteration:
                raise ConfigError(f"data.path: the training records ended after {s} of {steps} batches "
                                  f"(did the files change after they were counted?)") from None
            yield _normalise(images, spec), labels

    def evaluate(self, spec: ModelSpec, seed: int, epochs: int | None = None) -> ProxyResult:
        """Train `spec` (shrunk) for the proxy's epochs, or `epochs` (a Hyperband rung), and validate."""
        import keras

        start = time.perf_counter()
        config = self.config if epochs is None else dataclasses.replace(self.config, epochs=epochs)
        small = shrink(spec, config, self.data.num_classes, self.data.include_background)
        try:
            loss, accuracy = self._train_and_validate(small, seed, config)
        finally:
            keras.backend.clear_session()  # releases the trial's layers and graphs (and runs gc)
        return ProxyResult(accuracy, loss, time.perf_counter() - start)

    def _train_and_validate(self, spec: ModelSpec, seed: int, c: ProxyConfig) -> tuple[float, float]:
        import keras
        import tensorflow as tf

        from nas.train.optim import Optimizer, OptimizerConfig
        from search_space.builder import build_model

        keras.utils.set_random_seed(seed)
        if c.deterministic:
            tf.config.experimental.enable_op_determinism()
        x_train, x_val = self._inputs(spec)
        y_val = self.data.val_labels
        batch = min(c.batch_size, self.data.train_count)
        steps_per_epoch = self.data.train_count // batch  # full batches only: one traced shape
        total = steps_per_epoch * c.epochs

        model = build_model(spec, seed=seed, drop_connect=False)
        variables = model.trainable_variables
        plain = [v.value for v in variables]  # the tf.Variables the kernels update
        optimizer = Optimizer(OptimizerConfig(c.optimizer, momentum=c.momentum, epsilon=ADAM_EPSILON), plain,
                              [v.path for v in variables])

        # autograph off: the step has no Python control flow on tensors, and conversion costs seconds.
        # One fused update op per variable (the trainer's `Optimizer.apply`) keeps the traced graph small.
        @tf.function(autograph=False)
        def step(images, labels, learning_rate, done):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            optimizer.apply_all(plain, tape.gradient(loss, variables), learning_rate, done)
            return loss

        rng = np.random.default_rng(seed)
        losses: list[float] = []
        for epoch in range(c.epochs):
            if self.data.stream is None:
                batches = self._memory_batches(x_train, batch, steps_per_epoch, rng)
            else:
                batches = self._stream_batches(spec, batch, steps_per_epoch, seed, epoch, c.deterministic)
            losses = []
            for s, (images, labels) in enumerate(batches):
                done = epoch * steps_per_epoch + s
                learning_rate = 0.5 * c.learning_rate * (1.0 + math.cos(math.pi * done / total))
                loss = float(step(images, labels, tf.constant(learning_rate, tf.float32), tf.constant(done, tf.int64)))
                if not math.isfinite(loss):
                    raise TrialFailed(f"training loss became {loss} at step {done + 1} of {total}")
                losses.append(loss)

        if self.data.stream is None:  # a random batch of the training set
            pick = rng.choice(len(x_train), min(CALIBRATION_IMAGES, len(x_train)), replace=False)
            self._recalibrate_batch_norm(model, x_train[np.sort(pick)])
        else:  # the fixed first records of the stream, held in memory
            self._recalibrate_batch_norm(model, x_train[:CALIBRATION_IMAGES])
        correct = 0
        for i in range(0, len(y_val), 256):
            images = tf.constant(x_val[i:i + 256]) if x_val is not None else _normalise(
                tf.constant(self.data.val_images[i:i + 256]), spec)
            logits = model(images, training=False)
            correct += int(np.sum(np.argmax(logits.numpy(), axis=-1) == y_val[i:i + 256]))
        return float(np.mean(losses)), correct / len(y_val)

    @staticmethod
    def _recalibrate_batch_norm(model, images: np.ndarray) -> None:
        """Moving statistics := statistics of one fixed batch of training images (momentum 0)."""
        import keras
        import tensorflow as tf

        norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        momenta = [layer.momentum for layer in norms]
        for layer in norms:
            layer.momentum = 0.0
        model(tf.constant(images), training=True)
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def cached_proxy_task(config, resolution: int) -> ProxyTask:
    """The search config's proxy at `resolution`, its data loaded once per process: the one worker
    cache (`nas.execution.worker.cached`) that search trials and `nas scale search`'s jobs share."""
    from nas.data import load_dataset
    from nas.execution.worker import cached

    def make() -> ProxyTask:
        return ProxyTask(dataclasses.replace(config.proxy, resolution=resolution), load_dataset(config.data, resolution))

    return cached(config.to_yaml(), ("proxy_task", resolution), make)
