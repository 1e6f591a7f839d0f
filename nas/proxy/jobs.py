"""Proxy accuracy for a fixed list of models, on the config's backend (`execution:`).

A search proposes its trials one by one; some work knows all its models up front (`nas scale search
--config` scores every feasible alpha / beta / gamma's phi = 1 model). Each job is one proxy
training of one spec at its own proxy resolution; the local backend runs them in turn, the Ray
backend as Ray tasks with `resources_per_trial`, at most `max_concurrent` at once, a crashed one
retried `max_failures` times. A job that fails gives its error instead of a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nas.common.errors import UserError
from search_space.spec import ModelSpec

from nas.search.config import SearchConfig
from nas.execution.worker import one_line, raise_user_error, user_error_result
from nas.proxy.task import ProxyResult, cached_proxy_task


@dataclass(frozen=True)
class ProxyJob:
    spec: ModelSpec  # full size; the proxy shrinks its width by proxy.width
    resolution: int  # the proxy's input resolution for this model
    seed: int


JobOutcome = ProxyResult | str  # the result, or the job's error in one line

def run_job(config: SearchConfig, job: ProxyJob) -> JobOutcome:
    try:
        return cached_proxy_task(config, job.resolution).evaluate(job.spec, job.seed)
    except UserError:
        raise
    except Exception as exc:  # this model failed; the others go on
        return one_line(exc)


Progress = Callable[[int, int, int, JobOutcome], None]  # (done, total, the job's index, its outcome)


def run_jobs(config: SearchConfig, jobs: list[ProxyJob],
             progress: Progress = lambda done, total, index, outcome: None) -> list[JobOutcome]:
    """Every job's outcome, in the jobs' order; `progress(...)` as each finishes (on Ray, in any order)."""
    if config.execution.ray:
        return _run_on_ray(config, jobs, progress)
    outcomes = []
    for index, job in enumerate(jobs):
        outcomes.append(run_job(config, job))
        progress(len(outcomes), len(jobs), index, outcomes[-1])
    return outcomes


def _remote_job(config: SearchConfig, job: ProxyJob) -> JobOutcome | dict:
    from nas.execution.ray_cluster import limit_threads

    limit_threads(config.execution.resources_per_trial.cpu)
    try:
        return run_job(config, job)
    except UserError as exc:  # the data is missing on that node, ...: stop, don't retry
        return user_error_result(exc)


def _run_on_ray(config: SearchConfig, jobs: list[ProxyJob], progress) -> list[JobOutcome]:
    from nas.execution.ray_cluster import connect, failed_on_ray

    connect(config.execution)
    import ray

    resources = config.execution.resources_per_trial
    remote = ray.remote(_remote_job).options(num_cpus=resources.cpu, num_gpus=resources.gpu,
                                             max_retries=config.execution.max_failures, retry_exceptions=True)
    config_ref = ray.put(config)
    limit = config.execution.max_concurrent or len(jobs)
    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    waiting = list(enumerate(jobs))
    running: dict = {}
    done = 0
    while waiting or running:
        while waiting and len(running) < limit:
            index, job = waiting.pop(0)
            running[remote.remote(config_ref, job)] = index
        ready, _ = ray.wait(list(running), num_returns=1)
        index = running.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except Exception as exc:  # retried max_failures times: the worker keeps dying, or the job raising
            outcome = failed_on_ray(config.execution.max_failures + 1, one_line(exc))
        if isinstance(outcome, dict):  # a user error on the worker: stop everything, say it in one line
            for ref in running:
                ray.cancel(ref)
            raise_user_error(outcome)
        outcomes[index] = outcome
        done += 1
        progress(done, len(jobs), index, outcome)
    return outcomes
