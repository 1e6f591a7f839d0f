"""One `nas train` run from start (or resume) to the last line: data, model, fine-tuning, epochs."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import yaml

from nas.data import DataConfig, load_dataset
from nas.common.schema import section_dict
from nas.train.recipe import recipe_dict, resolve
from nas.common.files import write_bytes
from nas.common.lock import acquire_run_lock
from nas.common.bounds import check_model_memory
from nas.deploy.preprocessing import write_run_record
from nas.train.run_dir import TensorBoard, plot_curves, read_metrics, read_record, write_metrics, write_summary
from nas.common.errors import UserError

_LOWER = "lower --batch-size, or train a smaller spec (width, resolution or filters)"

# What a resume may not change, by the flag that sets it (a setting from --config is named by its field).
_FLAGS = {"train.batch_size": "--batch-size", "train.seed": "--seed", "train.preset": "--preset",
          "train.augment": "--augment", "train.mixed_precision": "--mixed-precision",
          "train.checkpoint_every": "--checkpoint-every", "init_from": "--init-from",
          "freeze_until": "--freeze-until", "data.path": "--data-dir"}


def _check_same_run(run_dir: Path, before: dict, record: dict) -> None:
    """Refuse a resume whose settings differ from the run's record (`train.yaml`): only the epochs may."""
    from nas.search.fingerprint import differences

    changed = [d for d in differences(before, record) if not d.startswith("train.epochs ")]
    if not changed:
        return
    spec = [d for d in changed if d.startswith("spec.")]
    named = [f"{_FLAGS[d.split(' ')[0]]}: {d}" if d.split(" ")[0] in _FLAGS else d
             for d in changed if not d.startswith("spec.")]
    if spec:
        named.insert(0, f"the model (--model/--spec), in {', '.join(d.split(' ')[0] for d in spec[:4])}"
                        + (f" and {len(spec) - 4} more" if len(spec) > 4 else ""))
    raise UserError(f"--resume: settings differ from what run '{run_dir}' recorded in train.yaml: {'; '.join(named)}. "
                    "Only --epochs may change; drop the other flags to resume with the run's own, or start "
                    "another --run-dir")


def class_counts(data, shown: int = 20) -> str:
    """The line naming how many training images each class has (the fewest first past `shown` classes)."""
    counts = np.bincount(data.train_labels, minlength=data.num_classes)
    names = data.class_names or [str(i) for i in range(data.num_classes)]
    pairs = [f"{name} {count:,d}" for name, count in zip(names, counts)]
    if len(pairs) <= shown:
        return "training images per class: " + ", ".join(pairs)
    order = np.argsort(counts, kind="stable")[:shown // 2]
    return (f"training images per class: {counts.min():,d} to {counts.max():,d} (median {int(np.median(counts)):,d}); "
            "fewest: " + ", ".join(pairs[i] for i in order))


def _check_data(data) -> None:
    classes = np.unique(data.train_labels)
    if data.stream is None and len(classes) < 2:
        raise UserError(f"the training data has {len(classes)} class; a classifier needs at least 2 "
                        "(DIR/<class>/* with one folder per class)")


def _freeze(model, until: int) -> int:
    """Stem and blocks_0..blocks_<until - 1> stop training (their batch norm runs in inference mode)."""
    from search_space import layer_names

    frozen = 0
    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer_names.parse(layer.name)
        if name.role == layer_names.STEM or (name.block is not None and name.block < until):
            layer.trainable = False
            frozen += 1
    return frozen


def _init_from(model, spec, path: str, fused_stride_on) -> str:
    """Copy a released or project checkpoint's weights in by reference name; a classifier of another
    size stays freshly initialised. Returns the line to print."""
    import keras

    from nas.deploy.checkpoints import load_model, open_checkpoint
    from search_space import layer_names
    from search_space.builder import reference_weight_map

    ckpt = open_checkpoint(path)
    source_spec = ckpt.spec or spec
    if ckpt.spec is None:  # a released checkpoint: its own class count, read off its classifier
        head = ckpt.shapes.get(f"{ckpt.model_name}/{layer_names.CLASSIFIER.reference_scope}/kernel")
        classes = head[-1] if head else 1001
        # Released ImageNet checkpoints have 1001 outputs: class 0 is the background label.
        source_spec = dataclasses.replace(spec, num_classes=classes, include_background=classes == 1001)
    else:
        source_spec = dataclasses.replace(spec, num_classes=ckpt.spec.num_classes,
                                          include_background=ckpt.spec.include_background)
    # load_model checks the architecture against the checkpoint (one line + exit 2 on a mismatch).
    loaded = load_model(path, source_spec, fused_stride_on=fused_stride_on)
    source = reference_weight_map(loaded.model)
    replaced = []
    for name, var in reference_weight_map(model).items():
        if list(source[name].shape) == list(var.shape):
            var.assign(keras.ops.convert_to_numpy(source[name]))
        else:
            replaced.append(name)
    line = f"init: weights from '{loaded.checkpoint.prefix}'" + (" (moving averages)" if loaded.ema else "")
    if replaced:
        line += (f"; classifier replaced: the checkpoint has {source_spec.num_classes} classes, the data "
                 f"{spec.num_classes}")
    del loaded
    return line


def run(args, spec, data_config: DataConfig, train_config, run_dir: Path, say=print) -> float:
    import keras
    import tensorflow as tf

    from nas.train import data as train_data
    from nas.train import distribute
    from nas.train.trainer import Trainer
    from search_space.builder import build_model, reference_weight_map

    worker = distribute.worker_index()
    if worker:  # non-chief workers of a cluster keep their files apart from the chief's
        run_dir = run_dir / f"worker-{worker}"
    lock = acquire_run_lock(run_dir, "training run directory")
    policy = keras.mixed_precision.global_policy()  # set_global_policy is process-wide: undone at the end
    try:
        resume_from = None
        if args.resume:
            from nas.train.state import latest

            resume_from = latest(run_dir)
            if resume_from is None:
                say(f"no checkpoint in '{run_dir}' yet: starting the run from the beginning")
        elif (run_dir / "checkpoint").exists():
            raise UserError(f"'{run_dir}' already holds a training run: add --resume, or choose another --run-dir")
        # Before any allocation: a model that cannot fit at the batch given (or at 1 image) is refused
        # without loading the data; the batch the recipe chooses is checked once the data is counted.
        check_model_memory(spec, train_config.batch_size or 1, True, _LOWER)
        strategy = distribute.make_strategy(args.strategy)
        data = load_dataset(data_config, spec.resolution)
        _check_data(data)
        spec = dataclasses.replace(spec, num_classes=data.num_classes,
                                   include_background=data.include_background)
        recipe, recipe_line = resolve(train_config, data.train_count, strategy.num_replicas_in_sync)
        record = {"spec": spec.to_dict(), "data": section_dict(data_config), "train": recipe_dict(recipe),
                  "init_from": args.init_from, "freeze_until": args.freeze_until}
        record_text = yaml.safe_dump(record, sort_keys=False)
        if args.resume:
            before = read_record(run_dir)
            if before is not None:
                _check_same_run(run_dir, before, record)
        if resume_from is not None:  # the checkpoint's step, from its name: before train.yaml is rewritten
            done = int(resume_from.rsplit("-", 1)[1]) // recipe.steps_per_epoch
            if recipe.config.epochs < done:
                raise UserError(f"--epochs {recipe.config.epochs} is below the {done} epochs run '{run_dir}' has "
                                f"trained; give --epochs {done} or more")
        check_model_memory(spec, recipe.batch_size // strategy.num_replicas_in_sync, True, _LOWER)
        streamed = " (streamed from the files every epoch)" if data.stream is not None else ""
        say(f"data: {data.name}, {data.train_count:,d} training{streamed} and {len(data.val_labels):,d} held-out images, "
            f"{data.num_classes} classes; {distribute.describe(strategy)}")
        say(recipe_line)
        if data.stream is None:
            say(class_counts(data))
        if recipe.config.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        keras.utils.set_random_seed(recipe.config.seed)
        with strategy.scope():
            model = build_model(spec, seed=recipe.config.seed)
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = recipe.config.bn_momentum
                    # Several replicas: statistics over the global batch, as the reference's TPU batch norm.
                    layer.synchronized = recipe.config.sync_batch_norm and strategy.num_replicas_in_sync > 1
            if args.init_from and resume_from is None:
                say(_init_from(model, spec, args.init_from, spec.fused_stride_on))
            if args.freeze_until:
                say(f"frozen: stem and blocks 0..{args.freeze_until - 1} ({_freeze(model, args.freeze_until)} layers)")
            trainer = Trainer(model, spec, recipe, strategy, reference_weight_map(model))
        if worker == 0:
            write_bytes(run_dir / "spec.yaml", spec.to_yaml().encode())
            write_bytes(run_dir / "train.yaml", record_text.encode())
            write_run_record(run_dir, spec, data)  # how eval and export prepare inputs; the class names
        rows = []
        if resume_from is not None:
            trainer.restore(resume_from)
            done = trainer.step // recipe.steps_per_epoch
            rows = [r for r in read_metrics(run_dir) if r["epoch"] <= done]
            say(f"resumed from '{resume_from}': step {trainer.step}, epoch {done} of {recipe.config.epochs}")
        start_epoch = trainer.step // recipe.steps_per_epoch
        board = TensorBoard(run_dir, enabled=worker == 0)
        started = time.perf_counter()
        c = recipe.config
        for epoch in range(start_epoch, c.epochs):
            stats = trainer.train_epoch(train_data.epoch_dataset(data, recipe, spec, epoch), epoch)
            top1, top5 = trainer.evaluate(data.val_images, data.val_labels)
            row = {"epoch": epoch + 1, "step": trainer.step, "top1": top1, "top5": top5, **stats}
            rows.append(row)
            left = (time.perf_counter() - started) / (epoch + 1 - start_epoch) * (c.epochs - epoch - 1)
            say(f"epoch {epoch + 1}/{c.epochs}: loss {stats['loss']:.4f}, held-out top-1 {100 * top1:.2f}% "
                f"top-5 {100 * top5:.2f}%, lr {stats['lr']:.4g}, {stats['images_per_s']:.0f} images/s, "
                f"ETA {left:.0f} s", flush=True)
            if worker == 0:
                write_metrics(run_dir, rows)
                board.epoch(row)
                if (epoch + 1) % c.checkpoint_every == 0 or epoch + 1 == c.epochs:
                    trainer.save(run_dir)
        if not rows:
            raise UserError(f"the run in '{run_dir}' has already trained its {c.epochs} epochs")
        if start_epoch >= c.epochs:  # killed after its last checkpoint: only the summary is left to write
            say(f"the run in '{run_dir}' has already trained its {c.epochs} epochs: writing its summary")
        if worker == 0:
            plot_curves(run_dir, rows)
            write_summary(run_dir, spec, recipe_line, f"{data.name}, {data.train_count:,d} training images{streamed}",
                          rows, time.perf_counter() - started)
        say(f"wrote {run_dir} (nas export --ckpt {run_dir}; nas eval --ckpt {run_dir})")
        say(f"held-out top-1 of the averaged weights: {100 * rows[-1]['top1']:.2f}%")
        return rows[-1]["top1"]
    finally:
        keras.mixed_precision.set_global_policy(policy)
        lock.release()
