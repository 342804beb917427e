"""Benchmarks that print tables: the four advantages, and the engine's speed and memory.

Each module is a command run from the repository root (``python -m bench.<name> --help``):

* `bench.advantages`: learngene descendants against their random-init baseline (the four advantages);
* `bench.throughput`: the project's training step against a plain PyTorch loop;
* `bench.sweep_speed`: K descendants as one vmap-batched model against one after another;
* `bench.cka_speed`: the vectorised CKA matrix against a naive per-pair implementation;
* `bench.memory`: peak memory of the web server with the default model loaded, and of a worker.

Every benchmark has a ``--quick`` setting, writes raw rows as CSV under ``--out`` and can put its
markdown section into ``docs/results.md`` (``--write-docs``). They import only the standard library,
numpy, torch, timm and `learngene`, so they run on a GPU box that has nothing else
(``bench/gpu_check.sh``).
"""
