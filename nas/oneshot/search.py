"""The one-shot search run (`controller: {name: tunas}`): one supernet, one path per step.

    for step in range(run.trials):
        sample  = controller.sample(step)            # independent categoricals; warm-ups replace some
        loss, acc = step_fn(train batch, validation batch, plan.encode(sample.trained, sample.mixed))
        latency = cached latency of the full-size candidate (the configured source)
        reward  = the configured reward (TuNAS's absolute one by default)
        journal.append(...)                          # one line per step: the sampled path and its scores
        controller.tell(sample, reward, step)         # REINFORCE, moving-average baseline, RL delay

The run directory is a search's (`config.yaml`, `journal.jsonl`, `trials.csv`, `top/`, `pareto.png`,
`summary.md`, one owner by `run_lock`), plus `checkpoint/` (supernet weights and optimiser slots),
`oneshot_state.json` (the step it belongs to, the controller's state and probability snapshots) and
`probabilities.png`. `best.yaml` is the most likely architecture at the end (TuNAS's argmax export).

Resume: every `checkpoint_every` steps the supernet, its optimiser, the controller (logits, Adam,
baseline, random generator) and the step are saved together; the data order, the validation batch
and dropout are functions of (seed, step), so nothing else is needed. A resumed run cuts the journal
back to the checkpoint's step and runs on: with deterministic ops it ends as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from nas.common.errors import UserError
from nas.common.files import write_text
from nas.common.lock import run_lock
from nas.oneshot.controller import TunasController
from nas.search.config import SearchConfig, make_latency
from nas.search.journal import OK, Journal, Trial
from nas.search.reward import make_reward

STATE = "oneshot_state.json"
CHECKPOINT = "checkpoint"


def resolution_of(config: SearchConfig) -> int:
    return config.proxy.resolution or config.space.skeleton.resolution


class OneShotSearch:
    def __init__(self, config: SearchConfig, run_dir: Path, say: Callable[[str], None] = print):
        self.config, self.root, self.say = config, Path(run_dir), say
        self.options = config.controller_options
        self.latency_model, self.target_ms = make_latency(config)
        self.reward = make_reward(config.reward, self.target_ms)
        self._costs: dict[tuple, tuple] = {}

    # Pieces ------------------------------------------------------------------------------------

    def cost(self, decisions: list[int]) -> tuple[float, int, int, dict]:
        """(latency ms, params, MACs, spec dict) of the full-size candidate, once per decision vector."""
        key = tuple(decisions)
        if key not in self._costs:
            from search_space.counting import model_cost

            spec = self.config.space.to_spec(decisions)
            cost = model_cost(spec)
            self._costs[key] = (float(self.latency_model.predict_ms(spec)), cost.params, cost.macs, spec.to_dict())
        return self._costs[key]

    def _load_data(self):
        from nas.data import load_dataset, normalize

        if self.config.data.stream:
            raise UserError("data.stream: the one-shot search keeps its data in memory; set stream: false")
        data = load_dataset(self.config.data, resolution_of(self.config))
        mean, std = self.config.space.skeleton.mean, self.config.space.skeleton.std
        return data, normalize(data.train_images, mean, std), normalize(data.val_images, mean, std)

    def build(self, data):
        from nas.oneshot.plan import SupernetPlan
        from nas.oneshot.step import SupernetStep
        from nas.oneshot.supernet import Supernet

        plan = SupernetPlan(self.config.space, self.config.proxy, data.num_classes, data.include_background)
        net = Supernet(plan, seed=self.config.run.seed)
        return plan, net, SupernetStep(net, self.config.proxy, self.options.weight_decay)

    def _batches(self, count: int, batch: int, salt: int, step: int) -> np.ndarray:
        """The indices of `step`'s batch: epoch permutations drawn from (seed, salt, epoch)."""
        per_epoch = max(count // batch, 1)
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([self.config.run.seed, salt, epoch]).permutation(count)
        return np.sort(order[k * batch:(k + 1) * batch])

    # The run -----------------------------------------------------------------------------------

    def run(self, resume: bool = False, config_given: bool = True) -> list[int]:
        from nas.search.loop import check_run_dir

        root = self.root
        with run_lock(root):
            journal = Journal(root / "journal.jsonl")
            state = self._read_state() if resume else None
            done = state["step"] if state else 0
            check_run_dir(self.config, root, resume, done, config_given)
            return self._run(journal, state, resume)

    def _read_state(self) -> dict | None:
        path = self.root / STATE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"'{path}' is unreadable ({exc}); start the run again without --resume") from None

    def _run(self, journal: Journal, state: dict | None, resume: bool) -> list[int]:
        import tensorflow as tf

        from nas.search.fingerprint import read_fingerprint, write_fingerprint

        config, options, root = self.config, self.options, self.root
        total = config.run.trials
        if config.proxy.deterministic:
            tf.config.experimental.enable_op_determinism()
        data, x_train, x_val = self._load_data()
        plan, net, stepper = self.build(data)
        controller = TunasController(config.space, options, total, seed=config.run.seed)
        variables = {f"w{i}": v for i, v in enumerate(net.trainable + net.stat_variables)}
        variables.update({f"s{j}_{i}": v for j, slot in enumerate(stepper.slots) for i, v in enumerate(slot)})
        checkpoint = tf.train.Checkpoint(**variables)
        snapshots: list[dict] = []
        start = 0
        trials = journal.read() if resume else []
        if state:
            checkpoint.read(str(root / state["prefix"])).assert_consumed()
            controller.load_state(state["controller"])
            snapshots, start = state["snapshots"], state["step"]
            trials = [t for t in trials if t.trial < start]
            write_text(journal.path, "".join(json.dumps(_asdict(t), separators=(",", ":")) + "\n" for t in trials))
        elif resume and trials:
            self.say("note: no one-shot checkpoint yet; starting the run over")
            trials = []
            journal.path.unlink(missing_ok=True)
        if read_fingerprint(root) is None:
            write_fingerprint(root, config.to_dict())
        write_text(root / "config.yaml", config.to_yaml())
        batch = min(config.proxy.batch_size, len(data.train_labels))
        val_batch = min(batch * options.validation_multiplier, len(data.val_labels))
        self.say(f"one-shot search '{config.run.name}': {total} steps of one sampled path (batch {batch}, "
                 f"validation {val_batch}), supernet {sum(int(np.prod(v.shape)) for v in net.trainable):,d} "
                 f"parameters; latency {self.latency_model.name} (target {self.target_ms:.3g} ms); writing {root}/"
                 + (f"; resuming at step {start}" if start else ""))
        # The compiled step takes the learning rate and counters as tensors: traced once for the run.
        y_train, y_val = data.train_labels, data.val_labels
        begin = time.perf_counter()
        try:
            for step in range(start, total):
                t0 = time.perf_counter()
                sample = controller.sample(step)
                path = plan.encode(sample.trained, sample.mixed)
                ti = self._batches(len(y_train), batch, 0, step)
                vi = self._batches(len(y_val), val_batch, 1, step)
                lr = 0.5 * config.proxy.learning_rate * (1.0 + math.cos(math.pi * step / total))
                loss, accuracy = stepper.step(
                    tf.constant(x_train[ti]), tf.constant(y_train[ti]), tf.constant(x_val[vi]), tf.constant(y_val[vi]),
                    *path.tensors(), tf.constant(lr, tf.float32), tf.constant(step + 1, tf.int64),
                    tf.constant([config.run.seed, step], tf.int64))
                loss, accuracy = float(loss), float(accuracy)
                if not math.isfinite(loss):
                    raise UserError(f"the supernet's training loss became {loss} at step {step + 1}; "
                                    f"lower proxy.learning_rate")
                latency, params, macs, spec = self.cost(sample.decisions)
                reward = float(self.reward(accuracy, latency))
                told = controller.tell(sample, reward, step)
                trial = Trial(step, sample.decisions, spec, OK, accuracy, latency, reward, params, macs,
                              time.perf_counter() - t0, extra={"train_loss": loss, **told,
                                                                "trained": sample.trained,
                                                                "op_warmup": sum(map(sum, sample.mixed))})
                journal.append(trial)
                trials.append(trial)
                if (step + 1) % options.snapshot_every == 0 or step + 1 == total:
                    snapshots.append({"step": step + 1, "probabilities": {
                        str(k): [round(float(p), 5) for p in v] for k, v in controller.probabilities().items()}})
                if (step + 1) % options.checkpoint_every == 0 or step + 1 == total:
                    self._checkpoint(checkpoint, controller, snapshots, step + 1)
                if (step + 1) % max(1, total // 20) == 0 or step + 1 == total:
                    rate = (time.perf_counter() - begin) / (step + 1 - start)
                    self.say(f"step {step + 1}/{total}  acc {accuracy:.3f}  lat {latency:.2f} ms  reward {reward:.4f}"
                             f"  baseline {told['baseline']:.4f}  {rate:.2f} s/step  ETA {(total - step - 1) * rate:.0f} s")
        except KeyboardInterrupt:
            self.say(f"interrupted; continue from the last checkpoint with: nas search --run-dir {root} --resume")
            raise
        finally:
            if trials:
                from nas.oneshot.results import write_oneshot_results

                write_oneshot_results(root, config, trials, self.target_ms, controller, snapshots, self)
        return controller.best()

    def _checkpoint(self, checkpoint, controller: TunasController, snapshots: list, step: int) -> None:
        """Weights and slots under a new prefix, then the state naming it (atomic), then old prefixes go."""
        directory = self.root / CHECKPOINT
        prefix = f"{CHECKPOINT}/step-{step}"
        checkpoint.write(str(self.root / prefix))
        write_text(self.root / STATE, json.dumps({"step": step, "prefix": prefix, "controller": controller.state(),
                                                  "snapshots": snapshots}))
        for old in directory.iterdir():
            if not old.name.startswith(f"step-{step}."):
                old.unlink() if old.is_file() else shutil.rmtree(old)


def _asdict(trial: Trial) -> dict:
    from dataclasses import asdict

    return asdict(trial)


def describe_supernet(config: SearchConfig) -> str:
    """The supernet's size and an estimate of its training memory, without building it (no TensorFlow)."""
    from nas.data import load_dataset
    from nas.oneshot.plan import SupernetPlan

    data = load_dataset(config.data, resolution_of(config))
    plan = SupernetPlan(config.space, config.proxy, data.num_classes, data.include_background)
    counted: dict[tuple, int] = {}
    activations = 0
    for i, slot in enumerate(plan.slots):
        per_branch = []
        for ops in slot.ops:
            for bop in ops:
                counted[(i, bop.key)] = bop.op.params
            per_branch.append(sum(b.op.out_size ** 2 * b.op.out_ch for b in ops))
        activations += max(per_branch)
    params = sum(counted.values()) + sum(op.params for op in plan.stem.ops + plan.head.ops)
    batch = min(config.proxy.batch_size, len(data.train_labels))
    slots = 2 if config.proxy.optimizer == "adam" else 1
    # Weights, their optimiser slots and a copy each in the gated update; per image about three maps
    # (conv, batch norm, activation) per op of the widest branch, kept for the backward pass.
    memory = 4 * (params * (2 + 2 * slots) + 3 * activations * batch)
    options = config.controller_options
    return (f"\nsupernet: {len(plan.slots)} layer slots, {params:,d} parameters at {resolution_of(config)} px, "
            f"width x{config.proxy.width:g} ({data.num_classes} classes); training memory about "
            f"{memory / 2 ** 20:,.0f} MiB at batch {batch} (validation batch "
            f"{min(batch * options.validation_multiplier, len(data.val_labels))}); {config.run.trials} steps, "
            f"RL delay {options.rl_delay:g}, op / filter warm-up {options.op_warmup:g} / {options.filter_warmup:g}\n")
