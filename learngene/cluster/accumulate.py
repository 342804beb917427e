"""Data-parallel ancestry training on Ray Train (`accumulate --backend ray --workers N`).

Ray Train's `TorchTrainer` starts N training processes (gloo on CPUs, NCCL on GPUs) that hold the
same model wrapped in DistributedDataParallel. Each process trains the library's own `Trainer` on an
equal share of the base-class training images (every N-th image, cut to the same count so that all
processes take the same number of steps) with a batch of `batch_size // N`, so one step of the group
sees `--batch-size` images as the local path does, with the gradients averaged over them. The
learning-rate schedule, optimiser and augmentation are the local ones; each process draws its data
order from `seed + rank`. Divergence is checked once per epoch on every process and agreed on (a
process that stopped alone would leave the others waiting in an all-reduce).

The driver (this process) stays the single writer: process 0 sends each epoch record (its share's
training loss and accuracy, the held-out accuracy on all held-out images) and at the end the trained
weights through a Ray queue; the driver writes the metrics, then the same checkpoint and model card
as `learngene.train.accumulate.accumulate` (`save_ancestry`), with the backend and workers recorded.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from learngene.cluster.backend import RayBackend
from learngene.errors import ConfigError, DivergedError
from learngene.reporting import Reporter


def _train_loop(config: dict[str, Any]) -> None:
    """One training process of the group (runs inside a Ray Train worker)."""
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from learngene.cluster.work import exit_with_parent
    from learngene.models import create_model
    from learngene.train.config import TrainConfig
    from learngene.train.trainer import Trainer

    exit_with_parent()
    torch.set_num_threads(config["threads"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    queue = config["queue"]
    x_train, y_train, x_test, y_test = ray.get(config["data"])
    n = config["per_worker_images"]
    xs, ys = x_train[rank::world][:n], y_train[rank::world][:n]
    cfg = TrainConfig.from_dict(config["cfg"])
    torch.manual_seed(cfg.seed)  # the same initial weights in every process (DDP also broadcasts rank 0's)
    model = create_model(config["arch"], num_classes=config["num_classes"], img_size=config["img_size"],
                         **config["overrides"])
    device = ray.train.torch.get_device()
    wrapped = ray.train.torch.prepare_model(model)
    local = replace(cfg, batch_size=config["per_worker_batch"], seed=cfg.seed + rank, device=device.type)
    first = rank == 0
    trainer = Trainer(wrapped, local, xs, ys, x_test if first else None, y_test if first else None)
    trainer.check_every_step = False  # every process takes every step of an epoch; the check is agreed below

    def agree(tr: Trainer, rec: dict[str, Any]) -> None:
        flag = torch.tensor([1.0 if tr.diverged else 0.0], device=device)
        if world > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and not tr.diverged:  # another process diverged: stop here too
            tr.diverged = True
            rec.update(diverged=True, train_loss=float("nan"), train_acc=float("nan"))
        if first:
            queue.put(("epoch", dict(rec)))

    trainer.add_callback("on_epoch_end", agree)
    try:
        trainer.run()
    except DivergedError as err:
        if first:
            queue.put(("diverged", str(err)))
        return
    if first:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        queue.put(("done", state, trainer.history, str(device)))


def _shares(cfg, n_images: int, workers: int) -> tuple[int, int]:
    """(batch, training images) of each of `workers` processes; refuses a batch or a set too small to share."""
    per_batch = cfg.batch_size // workers
    if per_batch < 1:
        raise ConfigError(f"--batch-size {cfg.batch_size} cannot be shared by {workers} workers; use at least "
                          f"{workers} (each worker takes batch-size / workers images per step)")
    per_worker = n_images // workers
    if per_worker < 1:
        raise ConfigError(f"{n_images} training images cannot be shared by {workers} workers")
    return per_batch, per_worker


def _torch_trainer(config: dict[str, Any], arch: str, workers: int, threads: int, gpu: bool, storage: str):
    """Ray Train's `TorchTrainer` running `_train_loop` in `workers` DDP processes."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    return TorchTrainer(
        _train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu, resources_per_worker={"CPU": threads}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        run_config=RunConfig(name=f"accumulate-{arch}", storage_path=storage),
    )


def _fit_and_follow(trainer, queue, reporter: Reporter | None) -> tuple:
    """Fit `trainer` in a thread while this one writes the epoch records process 0 sends through `queue`;
    returns its final message ("done", weights, history, device). A failure in the fit, or a divergence
    the processes agreed on, is raised here."""
    from ray.util.queue import Empty

    from learngene.train.accumulate import report_epoch

    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while True:
        try:
            item = queue.get(timeout=1.0)
        except Empty:
            if not thread.is_alive():
                if failure:
                    raise failure[0] from None
                raise RuntimeError("Ray Train finished without sending the trained weights") from None
            continue
        if item[0] == "epoch":
            if reporter is not None:
                report_epoch(reporter, item[1])
        elif item[0] == "diverged":
            raise DivergedError(item[1])
        else:
            break
    thread.join()
    if failure:
        raise failure[0]
    return item


def accumulate_ray(
    ds, arch: str, cfg, out: str | Path, *, workers: int, backend: RayBackend, overrides: dict[str, Any] | None = None,
    holdout_per_class: int = 100, command: str = "", reporter: Reporter | None = None,
) -> tuple[Path, Any]:
    """Train `arch` on the base classes of `ds` with `workers` DDP processes on Ray (`backend`, open);
    save it with its model card exactly as `learngene.train.accumulate.accumulate` does."""
    from ray.util.queue import Queue

    from learngene.train.accumulate import base_data, new_ancestry, save_ancestry
    from learngene.train.trainer import resolve_device

    x_train, y_train, x_test, y_test = base_data(ds, cfg, holdout_per_class)
    model = new_ancestry(ds, arch, cfg, overrides)  # here first: a bad architecture is reported in one line
    per_batch, per_worker = _shares(cfg, len(x_train), workers)
    gpu = resolve_device(cfg.device).type == "cuda"
    threads = max(1, int(backend.num_cpus))
    queue = Queue(actor_options={"num_cpus": 0})
    config = {"data": backend.ray.put((x_train, y_train, x_test, y_test)), "queue": queue, "cfg": cfg.to_dict(),
              "arch": arch, "overrides": dict(overrides or {}), "num_classes": len(ds.split.base),
              "img_size": ds.image_size, "per_worker_batch": per_batch, "per_worker_images": per_worker,
              "threads": threads}
    storage = tempfile.mkdtemp(prefix="learngene-ray-train-")
    trainer = _torch_trainer(config, arch, workers, threads, gpu, storage)
    backend.log(f"Ray Train: {workers} DDP workers ({'nccl' if gpu else 'gloo'}), {per_worker} training images "
                f"and a batch of {per_batch} each ({per_batch * workers} per step)")
    t0 = time.time()
    try:
        _, state, history, device = _fit_and_follow(trainer, queue, reporter)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    model.load_state_dict(state)
    extra = {"backend": "ray", "workers": workers, "per_worker_batch": per_batch,
             "per_worker_images": per_worker}
    return save_ancestry(model, ds, cfg, history, out, command=command, holdout_per_class=holdout_per_class,
                         train_images=per_worker * workers, heldout_images=len(x_test), seconds=time.time() - t0,
                         device=device, extra=extra)
