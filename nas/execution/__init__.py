"""Where work runs beyond the search's own process: `execution:` in a config (`config`), a Ray
cluster (`ray_cluster`: connecting, resources, thread limits), a search's trials as Ray Tune trials
(`ray_tune`), and what every worker process shares (`worker`: the per-worker cache, the user-error
convention).

The local backend's worker processes (`execution: {max_concurrent: N}`) live with the search loop, in
`nas.search.parallel`. The Ray backend is part of the search: `ray_tune` journals each finished trial
through the search's recorder (`nas.search.journal.Trial`) before the controller hears its reward,
exactly as the local backend does, and snapshots the controller for `Tuner.restore`.
"""
