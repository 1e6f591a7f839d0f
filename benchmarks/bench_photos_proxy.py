"""What one trial of experiments/photos.yaml costs on a folder of photos.

Writes a stand-in photo folder (`--classes` kinds of part, `--per-class` JPEGs each at 480x360, what a
phone photo is after a typical downscale: the cost depends on the image count and the proxy's size,
not on what the photos show), loads it as the search does (`--set data.path=...`), and trains the
config's proxy on `--trials` random architectures of its space one after another in one process,
as one `nas search` worker does. Records the seconds per trial (wall clock, and the process's CPU
seconds, which a busy machine inflates far less) and the time to read the photos.

    .venv/bin/python benchmarks/bench_photos_proxy.py [--trials 6] [--classes 5] [--per-class 80]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import write_results  # noqa: E402

from nas.data import load_dataset  # noqa: E402
from nas.proxy.task import ProxyTask  # noqa: E402
from nas.search.config import load_config  # noqa: E402

CONFIG = "experiments/photos.yaml"


def write_photos(root: Path, classes: int, per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"part{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"part{c}" / f"{i}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=80)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        write_photos(photos, args.classes, args.per_class)
        config = load_config(CONFIG, [f"data.path={photos}"])
        proxy, space = config.proxy, config.space
        start = time.perf_counter()
        data = load_dataset(config.data, proxy.resolution)
        read_s = time.perf_counter() - start
        task = ProxyTask(proxy, data)
        rng = random.Random(0)
        seconds, cpu = [], []
        for i in range(args.trials):
            before = time.process_time()
            result = task.evaluate(space.to_spec(space.sample(rng)), seed=i)
            cpu.append(time.process_time() - before)
            seconds.append(result.seconds)
            print(f"trial {i + 1}/{args.trials}: {result.seconds:.1f} s, {cpu[-1]:.1f} CPU s", flush=True)

    per_trial = statistics.median(seconds)
    body = [f"The proxy of `{CONFIG}` ({proxy.resolution} px, width x{proxy.width:g}, {proxy.epochs} epochs, batch "
            f"{proxy.batch_size}) on {args.classes * args.per_class} stand-in photos (480x360 JPEG, {args.classes} "
            f"classes: {data.train_count} train / {len(data.val_labels)} val), {args.trials} random architectures "
            "of its space, one after another in one process (one `nas search` worker).", "",
            "| measure | value |", "|---|---|",
            f"| seconds per trial (median) | {per_trial:.1f} |",
            f"| seconds per trial (range) | {min(seconds):.1f}-{max(seconds):.1f} |",
            f"| CPU seconds per trial (median) | {statistics.median(cpu):.1f} |",
            f"| reading the photos once (s) | {read_s:.1f} |",
            f"| {config.run.trials} trials, {config.execution.local_workers} at once (min, estimate) | "
            f"{config.run.trials * per_trial / config.execution.local_workers / 60:.0f} |", "",
            f"Run: `.venv/bin/python benchmarks/bench_photos_proxy.py --trials {args.trials} --classes {args.classes} "
            f"--per-class {args.per_class}`. A trial's time grows with the training images and with "
            "resolution^2 x width^2 x epochs. Other jobs may have shared the cores while measured (see the header's load)."]
    path = write_results("bench_photos_proxy", "A trial of the photos config: cost", "\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
