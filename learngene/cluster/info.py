"""What a backend offers: this machine's CPUs and GPUs, or a running Ray cluster's."""

from __future__ import annotations

from typing import Any


def resources(address: str | None = None) -> dict[str, Any]:
    """CPUs, GPUs and nodes a Ray backend would get.

    None: the local Ray a job starts for itself (this machine's CPUs and CUDA GPUs; nothing is started
    here). An address ("HOST:PORT" or "auto"): joins that cluster briefly and reads its totals.
    """
    if not address:
        from learngene.cluster.backend import local_cpus

        try:
            import torch

            gpus = torch.cuda.device_count()
        except Exception:  # noqa: BLE001 - no torch CUDA runtime: no GPU to offer
            gpus = 0
        return {"where": "a local Ray started by each job on this machine", "cpus": local_cpus(), "gpus": gpus,
                "nodes": 1}
    from learngene.cluster.backend import reachable, require_ray
    from learngene.errors import ConfigError

    reachable(address)
    ray = require_ray()
    try:
        ray.init(address=address, include_dashboard=False, logging_level="error", log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - a wrong address, a cluster that is down: one line
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}") from None
    try:
        total = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {"where": f"the Ray cluster at {address}", "cpus": int(total.get("CPU", 0)),
                "gpus": int(total.get("GPU", 0)), "nodes": len(nodes)}
    finally:
        ray.shutdown()


def describe(info: dict[str, Any]) -> str:
    return (f"{info['where']}: {info['cpus']} CPU(s), {info['gpus']} GPU(s)"
            + (f" on {info['nodes']} node(s)" if info["nodes"] != 1 else ""))
