"""Proxy accuracy as the scorer of `scaling.search_coefficients`: the base and each phi = 1 network
trained on the config's proxy task (locally or as Ray tasks, through `nas.proxy.jobs`), as
EfficientNet picks alpha, beta, gamma. `nas scale search --config` uses it.
"""

from __future__ import annotations

import time
from typing import Callable

from scaling import proxy_resolution
from search_space import ModelSpec

from nas.common.seeds import fit_seed
from nas.common.tables import format_duration


class ProxyScorer:
    """`score_many` for `search_coefficients`: the base and the given phi = 1 models trained on the
    config's proxy task (see the module docstring), their outcomes kept for the table."""

    def __init__(self, config, base: ModelSpec, say: Callable[[str], None] = print):
        self.config, self.base, self.say = config, base, say
        self.base_outcome = None  # ProxyResult, or the error in one line
        self.outcomes: dict[tuple, tuple[int, object]] = {}  # network -> (proxy px, outcome)
        self.wall_s = 0.0

    def resolution(self, spec: ModelSpec) -> int:
        return proxy_resolution(spec.resolution, self.base.resolution, self.config.proxy.resolution)

    def outcome(self, spec: ModelSpec) -> tuple[int, object]:
        """(proxy px, outcome or None when not trained) of a phi = 1 model."""
        return self.outcomes.get(tuple(spec.layers()), (self.resolution(spec), None))

    def _label(self, spec: ModelSpec) -> str:
        prefix = f"{self.base.name}-"
        return spec.name[len(prefix):] if spec.name.startswith(prefix) else spec.name

    def where(self) -> str:
        execution = self.config.execution
        if not execution.ray:
            return "locally, one at a time"
        at_once = f"at most {execution.max_concurrent} at once" if execution.max_concurrent else "as many as fit"
        return f"as Ray tasks ({execution.address}), {at_once}"

    def __call__(self, specs) -> list[float | None]:
        from nas.proxy import jobs as proxy_jobs

        config, seed = self.config, fit_seed(self.config.run.seed, "scale")
        models = [self.base, *specs]
        jobs = [proxy_jobs.ProxyJob(spec, self.resolution(spec), seed) for spec in models]
        labels = ["base (phi = 0)", *(self._label(spec) for spec in specs)]
        proxy = config.proxy
        self.say(f"proxy-training the base and {len(specs)} phi = 1 network(s) {self.where()}: width x{proxy.width:g}, "
             f"{proxy.epochs} epoch(s), data '{config.data.source}', seed {seed}, base at {jobs[0].resolution} px")
        if config.execution.ray:
            from nas.execution.ray_cluster import connect

            connect(config.execution, say=self.say)  # run_jobs then reuses the connection
        started = time.monotonic()

        def progress(done: int, total: int, index: int, outcome) -> None:
            elapsed = time.monotonic() - started
            which = f"{labels[index]}  {jobs[index].resolution} px"
            body = f"FAILED ({outcome[:100]})" if isinstance(outcome, str) else \
                f"acc {outcome.accuracy:.4f}  {outcome.seconds:.1f} s"
            self.say(f"proxy {done}/{total}  {which}  {body}  ETA {format_duration(elapsed / done * (total - done))}")

        outcomes = proxy_jobs.run_jobs(config, jobs, progress)
        self.wall_s = time.monotonic() - started
        self.base_outcome = outcomes[0]
        for spec, job, outcome in zip(specs, jobs[1:], outcomes[1:]):
            self.outcomes[tuple(spec.layers())] = (job.resolution, outcome)
        return [None if isinstance(o, str) else o.accuracy for o in outcomes[1:]]
