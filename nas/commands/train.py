"""`nas train`: train a spec into a checkpoint that `nas export` and `nas eval` take (nas/train/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.common.bounds import int_at_least
from nas.common.errors import UserError
from search_space import get_spec


def _run(args: argparse.Namespace) -> int:
    import yaml

    from nas.data import DataConfig, check_data
    from nas.common.errors import ConfigError
    from nas.common.schema import read_section
    from nas.train.run_dir import read_record

    spec = get_spec(args.model or args.spec) if (args.model or args.spec) else None
    recorded = None
    if args.resume:
        if spec is None and not args.run_dir:
            raise UserError("--resume needs --run-dir DIR: the run to continue")
        run_dir = Path(args.run_dir or f"runs/train-{spec.name}")
        recorded = read_record(run_dir)  # what the run was started with; None before its data loaded
        if recorded is None and spec is None:
            raise UserError(f"nothing to resume in '{run_dir}' (no train.yaml: it stopped before its data loaded); "
                            "give --model NAME or --spec FILE and the data to start it")
    elif spec is None:
        raise UserError("no model given: pass --model NAME or --spec FILE (or --run-dir DIR --resume)")
    if spec is None:  # a resume from the directory alone: the run's own spec, data and recipe
        from search_space.spec import ModelSpec

        spec = ModelSpec.from_dict(recorded["spec"], f"{run_dir / 'train.yaml'} spec")
    config = {}
    if args.config:
        try:
            config = yaml.safe_load(Path(args.config).read_text()) or {}
        except OSError as exc:
            raise UserError(f"cannot read config '{args.config}': {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise UserError(f"config '{args.config}' is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"config '{args.config}': expected a mapping with train: and data:")
    if args.data_dir:
        if "data" in config:
            raise UserError("give the data once: --data-dir or the config's data: section, not both")
        data_config = DataConfig(source="directory", path=args.data_dir)
    elif "data" in config or recorded is None:
        data_config = read_section(DataConfig, config.get("data"), "data")
    else:
        data_config = read_section(DataConfig, recorded["data"], "data")
    check_data(data_config)
    from nas.train.recipe import read_train_config

    train_section = config.get("train") if "train" in config or recorded is None else recorded["train"]
    train_config = read_train_config(train_section, {
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "preset": args.preset,
        "augment": args.augment, "mixed_precision": args.mixed_precision or None,
        "checkpoint_every": args.checkpoint_every})
    if recorded is not None:  # fine-tuning settings the flags leave out are the run's own
        for key in ("init_from", "freeze_until"):
            if getattr(args, key) is None:
                setattr(args, key, recorded.get(key))
    run_dir = Path(args.run_dir or f"runs/train-{spec.name}")
    from nas.train.session import run

    run(args, spec, data_config, train_config, run_dir)
    return 0


EXAMPLES = """\
examples:
  nas train --spec runs/photos/best.yaml --data-dir photos --run-dir runs/train-mine
  nas train --model efficientnet-edgetpu-S --init-from efficientnet-edgetpu-S --data-dir photos \\
      --run-dir runs/train-s                                   # fine-tune the released checkpoint
  nas train --run-dir runs/train-mine --resume                  # continue from the last checkpoint
  nas train --model efficientnet-edgetpu-S --config train_imagenet.yaml --preset reference
"""


def register(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a spec into a checkpoint (the reference EfficientNet recipe, or a small-data preset)",
        description="Train a registered or searched model on the configured data with the reference recipe "
                    "(TF1 RMSProp, warm-up + staircase decay, label smoothing, L2, a moving average of the "
                    "weights and batch-norm statistics), writing a run directory that 'nas export --ckpt' and "
                    "'nas eval --ckpt' take.",
        epilog=EXAMPLES,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME", help="registered model (see 'nas models')")
    which.add_argument("--spec", metavar="FILE", help="ModelSpec .yaml file (a search's best.yaml, a scaled spec)")
    parser.add_argument("--config", metavar="FILE", help="YAML with a train: section and a data: section "
                                                         "(the search's format: offline, mnist, directory, tfds, imagenet)")
    parser.add_argument("--data-dir", metavar="DIR", help="labelled images: DIR/train/<class>/* and DIR/val/<class>/*, "
                                                          "or DIR/<class>/* (a fixed 20%% is held out)")
    parser.add_argument("--preset", choices=("auto", "reference", "small"),
                        help="recipe preset (default auto: reference from 20,000 training images, small below)")
    parser.add_argument("--epochs", type=int_at_least(1), help="epochs (preset default: reference 350, small 30)")
    parser.add_argument("--batch-size", type=int_at_least(1), help="global batch (default: chosen from the data's size)")
    parser.add_argument("--seed", type=int_at_least(0), help="initialisation, data order and augmentation seed")
    parser.add_argument("--augment", choices=("none", "randaugment", "autoaugment"))
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 activations, float32 weights")
    parser.add_argument("--checkpoint-every", type=int_at_least(1), metavar="EPOCHS", help="checkpoint interval (default 1)")
    parser.add_argument("--run-dir", metavar="DIR", help="where the run goes (default runs/train-<model>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint (or from the "
                             "beginning if it has none yet) with the spec, data and recipe it recorded; "
                             "only --epochs may differ")
    parser.add_argument("--init-from", metavar="CKPT", help="fine-tune: start from a released TF1 or a project checkpoint")
    parser.add_argument("--freeze-until", type=int_at_least(0), metavar="BLOCK", help="freeze the stem and blocks 0..BLOCK-1")
    parser.add_argument("--strategy", choices=("auto", "default", "mirrored", "multiworker"), default="auto",
                        help="tf.distribute strategy (auto: TF_CONFIG workers, else the GPUs of this host)")
    parser.set_defaults(run=_run)
