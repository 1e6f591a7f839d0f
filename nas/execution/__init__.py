"""Where work runs: `execution:` in a config (`config`), the executors that run a search's trials or a
list of jobs in this process (`local`) or on a Ray cluster (`ray_tune`, `ray_cluster`), and what every
worker process shares (`worker`: the per-worker cache, the user-error convention, thread limits).

Executors know nothing of journals or controllers' insides: the search hands them a driver object.
"""
