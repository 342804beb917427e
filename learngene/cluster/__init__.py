"""Ray as the optional distributed backend: one Ray task per planned run, the driver the only writer.

Installed with the `cluster` extra (`pip install -e .[cluster]`, a pinned `ray[train]`). Nothing here
imports Ray at import time: `import learngene` and every local code path work without it, and asking
for `--backend ray` without it raises a `ConfigError` that says how to install it.

* `learngene.cluster.backend.RayBackend`: a driver's connection to Ray (a local Ray with this
  machine's CPUs, or a running cluster at `--ray-address`), a generic executor: it runs a picklable
  function as one Ray task with its resources (one CPU, torch pinned to that many threads, or a GPU
  fraction), gathers the results as tasks finish, and cancels them. What a task trains is its
  caller's business (a sweep's pairs and a study's runs: `learngene.descend.ray_units`); the driver
  stays the single writer of the run folder, its metrics and a study's journal. SIGTERM to the driver
  (`learngene jobs cancel`) cancels its Ray tasks and shuts down the Ray it started.
* `learngene.cluster.work.pinned`: what every task runs around its function.
* `learngene.cluster.accumulate`: data-parallel ancestry training with Ray Train's `TorchTrainer` (DDP).
* `learngene.cluster.options`: the `--backend`, `--ray-address`, `--workers` command-line options.
"""

from __future__ import annotations

INSTALL_HINT = "pip install -e .[cluster]"
