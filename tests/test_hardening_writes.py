"""Writes that must never half-happen or end in a traceback: a full disk while writing weights and their
card, a read-only runs folder, two commands writing one run folder, a failed job's reason, an MLflow
address nothing answers at, and Ray addresses that cannot be one. Each test failed before its fix."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest
import torch

from learngene import runlog
from learngene.errors import ConfigError, StorageError
from learngene.models import ModelCard, create_model, load_checkpoint, save_checkpoint
from tests.test_hardening_inputs import cli, one_error


def _fail_on(n: int, code: int):
    """A stand-in for runlog._write_temp that fails (with `code`) from its `n`-th call on."""
    real, calls = runlog._write_temp, []

    def write(path, data):
        calls.append(path)
        if len(calls) >= n:
            raise OSError(code, os.strerror(code))
        return real(path, data)
    return write


def test_a_full_disk_leaves_the_old_checkpoint_pair_whole_and_says_where(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = create_model("lg_resnet_mini", 4)
    path = save_checkpoint(model, tmp_path / "a.safetensors", ModelCard(spec=model.lg_spec))
    before = (path.read_bytes(), path.with_suffix(".json").read_bytes())
    torch.manual_seed(1)
    other = create_model("lg_resnet_mini", 4)
    monkeypatch.setattr(runlog, "_write_temp", _fail_on(2, errno.ENOSPC))  # the weights fit, the card does not
    with pytest.raises(StorageError, match=f"disk full at {path.with_suffix('.json')}"):
        save_checkpoint(other, path, ModelCard(spec=other.lg_spec))
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]  # no temporary file left
    monkeypatch.undo()
    load_checkpoint(path)


def test_a_full_disk_in_a_command_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(runlog, "_write_temp", _fail_on(1, errno.ENOSPC))
    out = tmp_path / "lg.safetensors"
    code, _, err = cli("inherit", "--layers", "0", "--out", str(out))
    assert code == 1 and f"disk full at {out}" in one_error(err)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_runs_folder_gives_one_line_errors(tmp_path, monkeypatch):
    from learngene.jobs import JobManager, JobSpec

    runs = tmp_path / "runs"
    mgr = JobManager(runs, max_cpu_jobs=1)
    run = runs / mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"]))
    assert mgr.wait(run.name, timeout=60).state == "done"
    monkeypatch.setattr(runlog, "_write_temp", _fail_on(1, errno.EROFS))
    code, _, err = cli("jobs", "--runs-dir", str(runs), "annotate", run.name, "--name", "x")
    assert code == 1 and "read-only file system" in one_error(err)

    def rmtree(path, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(Path(path) / "config.json"))
    monkeypatch.setattr("shutil.rmtree", rmtree)
    code, _, err = cli("jobs", "--runs-dir", str(runs), "delete", run.name)
    assert code == 1 and "read-only file system" in one_error(err)


def test_a_run_folder_has_one_writer(tmp_path):
    from learngene.reporting import Reporter

    with Reporter(tmp_path / "run", total=1, quiet=True):
        with pytest.raises(ConfigError, match=f"run folder {tmp_path / 'run'} is being written by another command "
                                              rf"\(pid {os.getpid()}\)"):
            Reporter(tmp_path / "run", total=1, quiet=True)
    with Reporter(tmp_path / "run", total=1, quiet=True) as rep:  # free again once the first one ended
        rep.metric({"kind": "x"})


def test_a_failed_jobs_reason_carries_the_workers_error_line(tmp_path):
    from learngene.jobs.runs import LOG_FILE, exit_reason

    (tmp_path / LOG_FILE).write_text("epoch 1\nerror: disk full at /runs/x/metrics.jsonl (no space left)\n")
    assert exit_reason(tmp_path, 1) == "exited with code 1: disk full at /runs/x/metrics.jsonl (no space left)"
    (tmp_path / LOG_FILE).write_text("Traceback ...\n")
    assert exit_reason(tmp_path, 7) == "exited with code 7"


def test_an_mlflow_address_nothing_answers_at_fails_within_seconds(tmp_path):
    from learngene.jobs.export import ExportedRun, to_mlflow

    run = ExportedRun("20260101-000000-train-abcdef", "x", "train", "done", 0.0, None, None)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="no MLflow tracking server answers at 127.0.0.1:1"):
        to_mlflow([run], "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="not valid"):
        to_mlflow([run], "http://127.0.0.1:99999")
    assert time.perf_counter() - t0 < 8


@pytest.mark.parametrize("address, said", [("127.0.0.1:99999", "port 99999 is out of range (1 to 65535)"),
                                           ("http://127.0.0.1:8265", "scheme http:// is not supported"),
                                           ("ray://127.0.0.1:10001", "Ray Client addresses (ray://) are not supported"),
                                           ("127.0.0.1:abc", "port 'abc' is not a number")])
def test_a_ray_address_says_what_is_wrong_with_it(address, said):
    code, _, err = cli("cluster", "--ray-address", address)
    assert code == 2 and said in one_error(err) and "nothing answers" not in err
