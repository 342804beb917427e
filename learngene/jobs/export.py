"""Export runs to the tools people already use: TensorBoard event files and an MLflow tracking store.

A run folder (see `learngene.jobs.runs`) holds everything: the job's config, its status, its metric
records and its outputs. `read_run` turns one into an `ExportedRun`:

* params: the run's recorded configuration (the `config` metric record: recipe, training settings,
  tasks, data) flattened to dotted keys, plus the job's kind, name, device and command line;
* curves: every numeric field of every `epoch` record (train/test loss and accuracy, lr, ...) as one
  series per model and task (and sweep setting), e.g. `test_acc/learngene/task0`, by epoch;
* results: the numbers of the `summary` record (final accuracy of both models, gain, epochs to target...);
* tags: the name, tags and note a person gave the run (`learngene.jobs.annotations`).

`to_tensorboard` writes one sub-folder per run (`tensorboard --logdir DIR` shows them side by side, the
config on the HPARAMS tab); `to_mlflow` logs one MLflow run per run into an experiment of a tracking
store: a folder (MLflow's file store, `mlflow ui --backend-store-uri DIR`, with `MLFLOW_ALLOW_FILE_STORE=true`
on MLflow 3), MLflow's recommended SQLite store (`sqlite:///<file>.db`) or any tracking URI. Exporting a run
again replaces what an earlier export wrote for it. `export_zip` makes the app's downloads (TensorBoard, the
MLflow file store, the MLflow SQLite store) that MLflow's own client reads after unzipping anywhere: empty
folders kept, artifact locations relative.
CLI twin: `python -m learngene jobs export RUN... --tensorboard DIR --mlflow DIR`.
Needs the `tensorboard` (and torch) and `mlflow-skinny` packages (requirements.txt), imported only here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learngene.errors import ConfigError
from learngene.jobs.annotations import read_annotations
from learngene.jobs.runs import read_config, read_status
from learngene.runlog import read_json, read_jsonl

# Fields of an epoch record that name its series rather than measure something.
_NOT_METRICS = {"kind", "t", "epoch", "step", "time", "diverged"}
_ID_ORDER = ("model", "task")  # series names start with these, other naming fields follow sorted
_SETTINGS = {"base_lr", "weight_decay", "k_shot", "n_way", "seed"}  # a sweep's setting in its epoch records
MAX_PARAM_LIST = 32  # longer lists (a class split) are left out of the params
EXPERIMENT = "learngene-studio"
RUN_ID_TAG = "learngene.run_id"


@dataclass
class ExportedRun:
    """One run folder, read for export."""

    run_id: str
    name: str
    kind: str
    state: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    params: dict[str, str | float | int | bool] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # tag -> (step, value, wall)
    results: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def flatten(data: Any, prefix: str = "", depth: int = 4) -> dict[str, str | float | int | bool]:
    """Nested dicts to dotted keys; short lists of scalars become "a,b,c"; long lists and None are left out."""
    out: dict[str, Any] = {}
    if isinstance(data, dict) and depth > 0:
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key), depth - 1))
    elif isinstance(data, (list, tuple)):
        if len(data) <= MAX_PARAM_LIST and all(_scalar(v) and v is not None for v in data):
            out[prefix] = ",".join(map(str, data))
    elif isinstance(data, float):
        if math.isfinite(data):
            out[prefix] = data
    elif isinstance(data, (str, int, bool)):
        out[prefix] = data
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _naming(key: str, value: Any) -> bool:
    """Whether an epoch record's field names its series (model, task, a sweep's setting, any text)."""
    if key in _NOT_METRICS:
        return False
    return key in _ID_ORDER or key in _SETTINGS or isinstance(value, (str, bool))


def series_name(rec: dict[str, Any]) -> str:
    """`learngene/task0`, or with a sweep's setting `learngene/task0/base_lr_0.001/k_shot_5/...`."""
    parts = [str(rec["model"])] if "model" in rec else []
    if "task" in rec:
        parts.append(f"task{rec['task']}")
    parts += [f"{k}_{_fmt(rec[k])}" for k in sorted(rec) if k not in _ID_ORDER and _naming(k, rec[k])
              and rec[k] is not None]
    return "/".join(re.sub(r"[^\w.\- ]", "_", p) for p in parts) or "run"


def _metric_keys(rec: dict[str, Any]) -> list[str]:
    return [k for k, v in rec.items() if not _naming(k, v) and k not in _NOT_METRICS
            and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _results(summary: dict[str, Any]) -> dict[str, float]:
    """The summary record's numbers: each `{"mean": ...}` statistic by its path, and plain numbers."""
    out: dict[str, float] = {}

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict) or depth < 0:
            return
        if isinstance(node.get("mean"), (int, float)) and not isinstance(node.get("mean"), bool):
            out[path] = float(node["mean"])
            return
        for key, value in node.items():
            sub = f"{path}/{key}" if path else str(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[sub] = float(value)
            elif isinstance(value, dict):
                walk(value, sub, depth - 1)

    walk({k: v for k, v in summary.items() if k not in ("kind", "t")}, "", 3)
    return {f"summary/{k}": v for k, v in out.items() if math.isfinite(v)}


def read_run(run_dir: str | Path) -> ExportedRun:
    """Read one run folder for export; ConfigError when it is not a complete run."""
    folder = Path(run_dir)
    config = read_config(folder)
    if config is None:
        raise ConfigError(f"{folder} is not a run folder with a readable config.json")
    status = read_status(folder)
    spec = config["spec"]
    notes = read_annotations(folder)
    records, _ = read_jsonl(folder / "metrics.jsonl")
    recorded = next((r for r in records if r.get("kind") == "config"), {})
    params = flatten({k: v for k, v in recorded.items() if k not in ("kind", "t", "command")})
    params.update({"job.kind": spec.get("kind") or "", "job.name": spec.get("name") or "",
                   "job.device": spec.get("device") or "", "job.command": " ".join(config.get("command", []))[:500]})
    params.update(flatten({"job.tags": spec.get("tags") or {}}))
    run = ExportedRun(run_id=folder.name, name=notes["name"] or spec.get("name") or folder.name,
                      kind=spec.get("kind") or "", state=status.get("state", ""),
                      created_at=float(config.get("created_at") or 0), started_at=status.get("started_at"),
                      ended_at=status.get("ended_at"), params=params,
                      tags={"learngene.state": status.get("state", ""), "learngene.kind": spec.get("kind") or "",
                            **({"learngene.tags": ",".join(notes["tags"])} if notes["tags"] else {}),
                            **({"learngene.note": notes["note"]} if notes["note"] else {})})
    for rec in records:
        if rec.get("kind") != "epoch" or not isinstance(rec.get("epoch"), int):
            continue
        name = series_name(rec)
        wall = float(rec.get("t") or run.created_at)
        for key in _metric_keys(rec):
            run.curves.setdefault(f"{key}/{name}", []).append((int(rec["epoch"]), float(rec[key]), wall))
    summary = next((r for r in reversed(records) if r.get("kind") == "summary"), None)
    if summary is None:
        data = read_json(folder / "outputs" / "summary.json", default={}) or {}
        summary = data.get("summary") if isinstance(data, dict) else None
    if isinstance(summary, dict):
        run.results = _results(summary)
    return run


# ------------------------------------------------------------------ TensorBoard


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def to_tensorboard(runs: Iterable[ExportedRun], logdir: str | Path) -> list[Path]:
    """One event-file folder per run under `logdir` (named by run id); returns the folders.

    Scalars: every curve by epoch (wall time from the record), the results at the last epoch; the params
    as hyper-parameters with the results as their metrics (TensorBoard's HPARAMS tab).
    """
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    root = Path(logdir)
    out = []
    for run in runs:
        folder = root / run.run_id
        if folder.is_dir():  # a run exported again: its old events would double every point
            if any(not p.name.startswith("events.out.tfevents.") for p in folder.iterdir()):
                raise ConfigError(f"{folder} holds files that are not TensorBoard event files; not replacing it")
            shutil.rmtree(folder)
        writer = SummaryWriter(log_dir=str(folder))
        try:
            last = 0
            for tag, points in sorted(run.curves.items()):
                for step, value, wall in points:
                    writer.add_scalar(tag, value, step, walltime=wall)
                    last = max(last, step)
            end = run.ended_at or run.created_at
            for tag, value in sorted(run.results.items()):
                writer.add_scalar(tag, value, last, walltime=end)
            hp = {k: _hparam_value(v) for k, v in run.params.items()}
            hp.update({"run.name": run.name, "run.id": run.run_id, "run.state": run.state})
            for summary in hparams(hp, dict(run.results)):
                writer.file_writer.add_summary(summary, walltime=end)
        finally:
            writer.close()
        out.append(folder)
    return out


# ------------------------------------------------------------------ MLflow


def mlflow_uri(target: str | Path) -> str:
    """A tracking URI: a URI as given ("scheme://..."), a folder as a file store URI."""
    text = str(target)
    if "://" in text or text.startswith(("sqlite:", "file:")):
        return text
    return Path(text).resolve().as_uri()


def _mlflow_key(key: str) -> str:
    return re.sub(r"[^\w./\- ]", "_", key)[:250]


def to_mlflow(runs: Iterable[ExportedRun], target: str | Path, experiment: str = EXPERIMENT) -> list[str]:
    """One MLflow run per run in `experiment` of the store at `target`; returns the MLflow run ids.

    A run exported before (found by its `learngene.run_id` tag) is deleted first, so the store holds one
    MLflow run per learngene run.
    """
    uri = mlflow_uri(target)
    check_tracking_server(uri)
    settings = dict(_HTTP_LIMITS)
    if uri.startswith("file:"):  # MLflow 3 refuses the file store unless asked for it
        settings["MLFLOW_ALLOW_FILE_STORE"] = "true"
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update({k: v for k, v in settings.items() if k == "MLFLOW_ALLOW_FILE_STORE" or before[k] is None})
    try:
        return _to_mlflow(list(runs), uri, experiment)
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# A tracking server that accepts the connection but does not answer fails in about 20 s, not after MLflow's
# default 2 minutes times 7 retries (a user's own settings of these win).
_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
CONNECT_TIMEOUT_S = 3.0


def check_tracking_server(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an http(s) tracking URI whose server does not accept a connection within `timeout` seconds
    (`ConfigError` naming the address); other URIs (a folder, sqlite) are left to MLflow."""
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range or not a number
        raise ConfigError(f"the MLflow tracking address {uri[:200]} is not valid ({exc})") from None
    if not host:
        raise ConfigError(f"the MLflow tracking address {uri[:200]} names no host")
    failure: list[str] = []

    def probe() -> None:  # in a thread: name resolution ignores socket timeouts
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            failure.append(exc.strerror or type(exc).__name__)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if thread.is_alive() or failure:
        why = failure[0] if failure else f"no answer within {timeout:g} s"
        raise ConfigError(f"no MLflow tracking server answers at {host}:{port} ({why}); start one there "
                          "(`mlflow server --host HOST --port PORT`) or export to a folder (--mlflow DIR)")


def _to_mlflow(runs: list[ExportedRun], uri: str, experiment: str) -> list[str]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    ids = []
    for run in runs:
        for old in client.search_runs([exp_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run.run_id}'"):
            client.delete_run(old.info.run_id)
        made = client.create_run(exp_id, start_time=int(1000 * (run.started_at or run.created_at)),
                                 tags={RUN_ID_TAG: run.run_id, **run.tags}, run_name=run.name)
        rid = made.info.run_id
        params = [Param(_mlflow_key(k), str(v)[:6000]) for k, v in sorted(run.params.items())]
        metrics = [Metric(_mlflow_key(tag), value, int(1000 * wall), step)
                   for tag, points in sorted(run.curves.items()) for step, value, wall in points]
        last = max((s for points in run.curves.values() for s, _, _ in points), default=0)
        end_ms = int(1000 * (run.ended_at or run.created_at))
        metrics += [Metric(_mlflow_key(tag), value, end_ms, last) for tag, value in sorted(run.results.items())]
        for i in range(0, max(len(params), 1), 100):  # MLflow's limits per batch: 100 params, 1000 metrics
            client.log_batch(rid, params=params[i:i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i:i + 1000])
        client.log_batch(rid, tags=[RunTag("learngene.exported_from", json.dumps({"run": run.run_id}))])
        status = {"done": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "cancelled": "KILLED"}
        if run.state in status:
            client.set_terminated(rid, status=status[run.state], end_time=end_ms)
        ids.append(rid)
    return ids


def export_runs(run_dirs: Iterable[str | Path], *, tensorboard: str | Path | None = None,
                mlflow: str | Path | None = None, experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Read the runs and export them to TensorBoard and/or MLflow; returns what was written."""
    if tensorboard is None and mlflow is None:
        raise ConfigError("nothing to export to: give a TensorBoard folder and/or an MLflow store")
    runs = [read_run(d) for d in run_dirs]
    if not runs:
        raise ConfigError("no runs to export")
    out: dict[str, Any] = {"runs": [r.run_id for r in runs],
                           "curves": sum(len(r.curves) for r in runs), "points": sum(len(p) for r in runs
                                                                                   for p in r.curves.values())}
    if tensorboard is not None:
        out["tensorboard"] = [str(p) for p in to_tensorboard(runs, tensorboard)]
    if mlflow is not None:
        out["mlflow"] = {"uri": mlflow_uri(mlflow), "experiment": experiment,
                         "runs": to_mlflow(runs, mlflow, experiment)}
    return out


# ------------------------------------------------------------------ downloads

ZIP_KINDS = ("tensorboard", "mlflow", "mlflow-sqlite")
SQLITE_NAME = "mlflow.db"


def zip_folder(folder: str | Path) -> bytes:
    """Every file under `folder` in a zip, paths relative to it, and every empty folder (as a folder entry;
    other folders are implied by their files): MLflow's file store takes a run folder without its (empty)
    `artifacts/` for no run at all."""
    import io
    import zipfile

    root = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    z.writestr(zipfile.ZipInfo(name + "/"), b"")  # a folder entry
            elif path.is_file() and not path.is_symlink():
                z.write(path, name)
    return buf.getvalue()


def relative_artifact_locations(store: str | Path) -> int:
    """Rewrite the artifact locations of an MLflow store, which MLflow records as absolute paths (here: into
    a temporary folder), as paths relative to the store (`<experiment>/<run>/artifacts` in a file store,
    `mlartifacts/<experiment>/<run>/artifacts` beside a SQLite file), so the store can be moved or unzipped
    anywhere (MLflow resolves them from the folder it runs in); returns how many were rewritten.

    `store` is a file store's folder or a SQLite store's file."""
    path = Path(store)
    if path.is_file():
        return _relative_sqlite(path)
    import yaml

    count = 0
    for meta in sorted(path.glob("*/meta.yaml")) + sorted(path.glob("*/*/meta.yaml")):
        data = yaml.safe_load(meta.read_text())
        if not isinstance(data, dict):
            continue
        key = "artifact_location" if meta.parent.parent == path else "artifact_uri"
        if key not in data:
            continue
        rel = meta.parent.relative_to(path).as_posix()
        data[key] = f"./{rel}" if key == "artifact_location" else f"./{rel}/artifacts"
        meta.write_text(yaml.safe_dump(data, default_flow_style=False))
        count += 1
    return count


def _relative_sqlite(db: Path) -> int:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as con, con:
        a = con.execute("UPDATE experiments SET artifact_location = './mlartifacts/' || experiment_id").rowcount
        b = con.execute("UPDATE runs SET artifact_uri = './mlartifacts/' || experiment_id || '/' || run_uuid "
                        "|| '/artifacts'").rowcount
    return a + b


def export_zip(run_dirs: Iterable[str | Path], what: str, experiment: str = EXPERIMENT) -> bytes:
    """The runs exported into a fresh folder and zipped, for a download: `what` is "tensorboard" (event
    files), "mlflow" (MLflow's file store: unzip, then `MLFLOW_ALLOW_FILE_STORE=true mlflow ui
    --backend-store-uri <folder>`) or "mlflow-sqlite" (MLflow's SQLite store, `mlflow.db`: unzip, then
    `mlflow ui --backend-store-uri sqlite:///<folder>/mlflow.db`). MLflow's artifact locations are relative."""
    import tempfile

    if what not in ZIP_KINDS:
        raise ConfigError(f"a download is one of {', '.join(ZIP_KINDS)}, got {what!r}")
    with tempfile.TemporaryDirectory(prefix="lg-export-") as tmp:
        out = Path(tmp) / what
        if what == "tensorboard":
            export_runs(run_dirs, tensorboard=out)
        else:
            store = out / SQLITE_NAME if what == "mlflow-sqlite" else out
            out.mkdir()
            export_runs(run_dirs, mlflow=f"sqlite:///{store}" if what == "mlflow-sqlite" else out,
                        experiment=experiment)
            relative_artifact_locations(store)
        return zip_folder(out)
