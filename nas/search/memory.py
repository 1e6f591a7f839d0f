"""Resource bounds, checked before any work: refuse a search that cannot fit in this machine's memory.

Two estimates, each compared with the memory available now (`/proc/meminfo` MemAvailable, else
`os.sysconf`), a refusal naming the setting to lower (one line, exit 2):

- the in-memory data set: images x resolution^2 x 3 channels x `DATA_BYTES_PER_VALUE` bytes. The
  images are held as uint8 (1 byte per value) while a source decodes and splits them (one more
  byte), and the proxy keeps a float32 normalised copy for training (4 bytes): 6 in all. The image
  count is the source's size where it is known without reading it (the offline digits, a
  directory's image files, ImageNet's 1,331,167 images) capped by `data.max_train` / `max_val`;
- the largest candidate of the space, shrunk as the proxy trains it: its parameters (weights,
  gradients and two Adam moments: 4 float32 copies) plus its activations for one batch (the widest
  tensor of every layer, `ACTIVATION_COPIES` float32 copies kept for the backward pass).

With `execution.max_concurrent: N` (N > 1) the local backend trains in N worker processes at once:
each holds its own copy of the data and trains its own candidate, and the search's own process keeps
the copy it loaded to check the data, so the data counts N + 1 times and the largest candidate N times.

The model estimate (`model_bytes`, `activation_values`, `available_memory`) is `nas.common.bounds`'s, the
one `nas train`, `export`, `eval` and `latency measure` check before they build a model.

The estimates are deliberately rough (within a factor of about two); they exist to stop the 14 GB
mistake before it starts, not to budget memory to the megabyte. A remote (Ray) search trains on
other machines, so only the local backend's memory is checked here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from search_space.spec import ModelSpec

# The model estimate is the one every command uses (nas.common.bounds); imported here under its old names.
from nas.common.bounds import GIB, activation_values, available_memory, model_bytes  # noqa: F401
from nas.common.errors import UserError

DATA_BYTES_PER_VALUE = 6
IMAGENET_IMAGES = 1_331_167
OFFLINE_IMAGES = 1_797


def image_count(data) -> int | None:
    """Images the source would hold in memory, where that is known before loading; None if not."""
    from nas.data.images import is_image_file

    known = None
    if data.source == "offline":
        known = OFFLINE_IMAGES
    elif data.source == "directory" and data.path:
        known = sum(1 for p in Path(data.path).rglob("*") if is_image_file(p))
    elif data.source == "imagenet" and not data.stream:
        known = IMAGENET_IMAGES
    if data.max_train is not None and data.max_val is not None and not data.stream:
        capped = data.max_train + data.max_val
        known = capped if known is None else min(known, capped)
    return known


def data_bytes(images: int, resolution: int) -> int:
    return images * resolution * resolution * 3 * DATA_BYTES_PER_VALUE


def largest_candidate(space) -> ModelSpec:
    """The candidate with the most activations: every numeric choice at its largest, each kind tried."""
    from search_space.space import DECISIONS

    best, best_size = None, -1
    for kind in sorted({k for stage in space.stages for k in stage.options("kind")}):
        decisions = []
        for stage in space.stages:
            for d in DECISIONS:
                options = list(stage.options(d))
                if d == "kind":
                    decisions.append(options.index(kind) if kind in options else 0)
                elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in options):
                    decisions.append(options.index(max(options)))
                else:
                    decisions.append(0)
        spec = space.to_spec(decisions)
        size = activation_values(spec)
        if size > best_size:
            best, best_size = spec, size
    return best


def check_memory(config, workers: int, available: int | None = None) -> None:
    """Refuse (`UserError`) a local search whose data set or largest candidates cannot fit.

    `workers`: the worker processes the search will really run (`Search.workers`: 1 for a controller
    that runs one trial at a time whatever execution.max_concurrent says)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    proxy = config.proxy
    resolution = proxy.resolution or config.space.skeleton.resolution
    copies = 1 if workers == 1 else workers + 1
    fewer = ", execution.max_concurrent" if workers > 1 else ""
    lower = ("proxy.batch_size, proxy.resolution or proxy.width" if workers == 1 else
             "proxy.batch_size, proxy.resolution, proxy.width or execution.max_concurrent")
    images = image_count(config.data)
    if images:
        need = copies * data_bytes(images, resolution)
        held = "" if copies == 1 else f", a copy in each of {workers} workers and the search's own"
        if need > available:
            raise UserError(f"the data set would need about {need / GIB:.1f} GiB in memory ({images:,d} images at "
                            f"{resolution}x{resolution}{held}), {available / GIB:.1f} GiB is available: lower "
                            f"proxy.resolution{fewer} or set data.max_train / data.max_val")
    else:
        need = 0
    largest = largest_candidate(config.space)
    small = dataclasses.replace(largest, resolution=resolution, width=largest.width * proxy.width)
    model = workers * model_bytes(small, proxy.batch_size)
    at_once = "" if workers == 1 else f", {workers} training at once"
    if need + model > available:
        raise UserError(f"the largest candidate would need about {model / GIB:.1f} GiB to train (batch "
                        f"{proxy.batch_size} at {resolution}x{resolution}, width x{proxy.width:g}{at_once}) beside "
                        f"{need / GIB:.1f} GiB of data, {available / GIB:.1f} GiB is available: lower "
                        f"{lower}")
