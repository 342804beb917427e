"""Background jobs with real processes: the `selftest` worker under the job manager's supervisor."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learngene.cli import jobs as jobs_cli
from learngene.errors import ConfigError, LearngeneError
from learngene.jobs import JobManager, JobSpec, RunInfo, procs
from learngene.jobs.supervisor import HOLDER_CHECK_S
from learngene.runlog import METRICS_FILE
from tests._procs import LONG, kill_runs_under, wait_for_progress, wait_until


@pytest.fixture
def make_manager(tmp_path):
    """A factory of JobManagers on one tmp runs folder; kills and reaps everything they started."""
    runs_dir = tmp_path / "runs"
    managers: list[JobManager] = []

    def make(**kwargs) -> JobManager:
        kwargs.setdefault("max_cpu_jobs", 1)
        manager = JobManager(runs_dir, **kwargs)
        managers.append(manager)
        return manager

    yield make
    for _ in range(2):  # a second pass catches a process forked during the first
        kill_runs_under(runs_dir.resolve())
        time.sleep(0.05)
    for manager in managers:
        for proc in manager._children:
            proc.kill()
            proc.wait(timeout=10)


def start(manager: JobManager, argv: list[str], **spec) -> str:
    return manager.start(JobSpec(argv=list(argv), **spec))


def running(manager: JobManager, run_id: str) -> RunInfo | None:
    info = manager.get(run_id)
    assert info.state in ("queued", "running"), (info.state, info.reason, info.log_tail)
    return info if info.state == "running" else None


def first_record(manager: JobManager, run_id: str) -> RunInfo:
    """Wait until the worker runs and has written (and logged) a metric record."""
    wait_until(lambda: running(manager, run_id) and manager.read_metrics(run_id)[0], what="a first record")
    wait_until(lambda: "selftest: record 1/" in manager.log_tail(run_id, 100), what="a first log line")
    return manager.get(run_id)


def test_metrics_arrive_while_running_then_done(make_manager):
    mgr = make_manager()
    run_id = start(mgr, ["selftest", "--records", "8", "--interval", "0.15"], name="demo")
    records, offset, seen_live = [], 0, False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = mgr.get(run_id)
        new, offset = mgr.read_metrics(run_id, offset)
        records += new
        if new and info.state == "running" and len(records) < 8:
            seen_live = True
        if not info.live:
            break
        time.sleep(0.05)
    new, offset = mgr.read_metrics(run_id, offset)
    records += new
    info = mgr.get(run_id)
    assert info.state == "done" and info.exit_code == 0, (info.reason, info.log_tail)
    assert seen_live, "no record was read while the run was going"
    assert [r["step"] for r in records] == list(range(8))
    assert mgr.read_metrics(run_id, offset) == ([], offset)
    assert info.progress == {"done": 8, "total": 8, "message": "record 8/8"}
    assert (info.path / "outputs" / "selftest.json").is_file()
    config = json.loads((info.path / "config.json").read_text())
    assert config["command"][1:4] == ["-m", "learngene", "selftest"]
    assert config["command"][-2:] == ["--run-dir", str(info.path)]
    assert config["python"] == sys.executable and config["cwd"] == os.getcwd()
    assert "record 8/8" in mgr.log_tail(run_id, 3)
    assert info.started_at >= info.created_at and info.ended_at >= info.started_at

    # A torn last line (a writer killed mid-append) is skipped, not fatal, and read once completed.
    with open(info.path / METRICS_FILE, "a") as f:
        f.write('{"step": 8, "lo')
    assert mgr.read_metrics(run_id, offset) == ([], offset)
    assert mgr.get(run_id).state == "done" and len(mgr.list()) == 1
    with open(info.path / METRICS_FILE, "a") as f:
        f.write('ss": 0.5}\n')
    assert mgr.read_metrics(run_id, offset)[0] == [{"step": 8, "loss": 0.5}]


def test_cancel_stops_worker_and_its_child(make_manager):
    mgr = make_manager()
    run_id = start(mgr, [*LONG, "--spawn-child"])
    info = first_record(mgr, run_id)
    child = json.loads((info.path / "outputs" / "child.pid").read_text())
    worker = info.status["worker_pid"]
    assert procs.is_alive(child) and procs.is_alive(worker)
    with pytest.raises(LearngeneError, match="cancel it first"):
        mgr.delete(run_id)
    mgr.cancel(run_id)
    info = mgr.wait(run_id, timeout=30)
    assert info.state == "cancelled", (info.reason, info.log_tail)
    assert info.exit_code == -signal.SIGTERM
    wait_until(lambda: not procs.is_alive(worker) and not procs.is_alive(child), 10, "worker and child to die")
    mgr.delete(run_id)
    assert mgr.list() == [] and not info.path.exists()
    with pytest.raises(ConfigError, match="no run"):
        mgr.get(run_id)


def test_cancel_escalates_to_sigkill(make_manager):
    mgr = make_manager(grace_s=0.5)
    run_id = start(mgr, [*LONG, "--ignore-sigterm"])
    first_record(mgr, run_id)
    mgr.cancel(run_id)
    info = mgr.wait(run_id, timeout=30)
    assert info.state == "cancelled" and info.exit_code == -signal.SIGKILL
    assert "SIGKILL" in info.reason


def test_killed_worker_is_failed_with_log_tail(make_manager):
    mgr = make_manager()
    run_id = start(mgr, LONG)
    info = first_record(mgr, run_id)
    os.kill(info.status["worker_pid"], signal.SIGKILL)
    info = mgr.wait(run_id, timeout=30)
    assert info.state == "failed" and info.exit_code == -9
    assert "killed by signal 9" in info.reason
    assert "selftest: record 1/" in info.log_tail


def test_dead_supervisor_is_detected_and_recorded(make_manager):
    mgr = make_manager()
    run_id = start(mgr, LONG)
    info = first_record(mgr, run_id)
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)
    os.kill(info.status["worker_pid"], signal.SIGKILL)
    info = wait_until(lambda: (i := mgr.get(run_id)).state == "failed" and i, 15, "the failed verdict")
    assert "supervisor" in info.reason
    assert "selftest: record 1/" in info.log_tail
    assert json.loads((info.path / "status.json").read_text())["state"] == "failed"  # persisted


def test_orphaned_gpu_worker_keeps_its_slot_until_cancelled(make_manager):
    mgr = make_manager()
    orphan = start(mgr, LONG, device="cuda")
    info = first_record(mgr, orphan)
    worker = info.status["worker_pid"]
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)  # the worker lives on, holding the GPU slot
    nxt = start(mgr, ["selftest", "--records", "1"], device="cuda")
    # Nobody reads the orphaned run: the waiting supervisor judges it (records the verdict) but, like
    # every reader, signals nothing; the orphan is still working, so the next run waits its turn.
    status_file = info.path / "status.json"
    verdict = wait_until(lambda: (s := json.loads(status_file.read_text()))["state"] == "failed" and s, 30,
                         "the waiter's verdict")
    # the waiter goes on after recording it: it judges the holders again (and beats) while the orphan works on
    waiter = mgr.run_dir(nxt) / "status.json"
    wait_until(lambda: json.loads(waiter.read_text()).get("heartbeat_at", 0) > verdict["ended_at"] + HOLDER_CHECK_S,
               30, "the waiter to judge the holders again")
    wait_for_progress(mgr, orphan)
    assert procs.is_alive(worker), "a waiting supervisor killed another run's worker"
    assert mgr.get(nxt).state == "queued"
    info = mgr.get(orphan)
    assert info.state == "failed" and info.leftover_worker == worker
    assert f"python -m learngene jobs cancel {orphan}" in info.reason
    assert mgr.cancel(orphan).state == "cancelled"  # the explicit cancel stops it and frees the slot
    wait_until(lambda: not procs.is_alive(worker), 10, "the cancel to stop the orphan")
    assert mgr.wait(nxt, timeout=45).state == "done"


def test_frozen_supervisor_is_judged_by_heartbeat_and_only_cancel_stops_it(make_manager):
    mgr = make_manager()
    run_id = start(mgr, LONG)
    info = first_record(mgr, run_id)
    sup, worker = info.status["supervisor_pid"], info.status["worker_pid"]
    os.kill(sup, signal.SIGSTOP)
    impatient = make_manager(stale_after_s=2.0)  # short threshold only once the supervisor is frozen
    info = wait_until(lambda: (i := impatient.get(run_id)).state == "failed" and i, 15, "the stale verdict")
    assert "heartbeat" in info.reason
    # Reading (here and in `jobs list`) never signals: both processes are left alone, and the run says so.
    impatient.list()
    wait_for_progress(impatient, run_id)  # the worker wrote a record after the readers were done
    assert procs.is_alive(sup) and procs.is_alive(worker), "a reader killed the run's processes"
    assert info.leftover_worker == worker
    assert f"its worker (pid {worker}) is still running" in info.reason
    assert f"python -m learngene jobs cancel {run_id}" in info.reason
    with pytest.raises(LearngeneError, match="still has its worker"):
        impatient.delete(run_id)
    info = impatient.cancel(run_id)  # the explicit cancel stops the proven worker and the frozen supervisor
    assert info.state == "cancelled" and info.leftover_worker is None, info.reason
    assert "heartbeat" in info.reason and "stopped by the cancel" in info.reason
    wait_until(lambda: not procs.is_alive(sup) and not procs.is_alive(worker), 10, "the cancel to stop them")
    impatient.delete(run_id)


def test_one_cuda_run_at_a_time_in_fifo_order(make_manager):
    mgr = make_manager()
    first = start(mgr, ["selftest", "--records", "1", "--sleep", "30"], device="cuda")
    first_record(mgr, first)
    second = start(mgr, ["selftest", "--records", "2"], device="cuda")
    dropped = start(mgr, ["selftest", "--records", "2"], device="cuda")
    third = start(mgr, ["selftest", "--records", "2"], device="cuda")
    side = start(mgr, ["selftest", "--records", "2"], device="cpu")  # the GPU queue does not block cpu
    assert mgr.wait(side, timeout=30).state == "done"
    assert [mgr.get(r).state for r in (second, dropped, third)] == ["queued"] * 3
    mgr.cancel(dropped)  # a queued run leaves the queue without ever starting
    info = mgr.wait(dropped, timeout=30)
    assert info.state == "cancelled" and info.started_at is None and "queued" in info.reason
    assert mgr.get(first).state == "running"
    mgr.cancel(first)
    infos = [mgr.wait(r, timeout=30) for r in (first, second, third)]
    assert [i.state for i in infos] == ["cancelled", "done", "done"]
    assert infos[0].ended_at <= infos[1].started_at and infos[1].ended_at <= infos[2].started_at


def test_max_cpu_jobs_and_exit_codes(make_manager):
    mgr = make_manager(max_cpu_jobs=2)
    slow = ["selftest", "--records", "3", "--interval", "0.2"]
    ids = [start(mgr, slow), start(mgr, [*slow, "--diverge"]), start(mgr, [*slow, "--exit-code", "7"])]
    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        infos = [mgr.get(r) for r in ids]
        peak = max(peak, sum(i.state == "running" for i in infos))
        if not any(i.live for i in infos):
            break
        time.sleep(0.05)
    assert peak <= 2
    done, diverged, failed = (mgr.get(r) for r in ids)
    # From the recorded times: the third run only started when one of the first two had ended.
    assert failed.started_at >= min(done.ended_at, diverged.ended_at)
    assert (done.state, done.exit_code, done.log_tail) == ("done", 0, None)
    assert (diverged.state, diverged.exit_code) == ("diverged", 3) and "diverged" in diverged.reason
    assert (failed.state, failed.exit_code) == ("failed", 7) and "exited with code 7" in failed.reason
    assert "selftest: record 3/3" in diverged.log_tail and "selftest: record 3/3" in failed.log_tail


def test_runs_survive_a_new_manager(make_manager):
    mgr = make_manager(max_cpu_jobs=2)
    learn = start(mgr, ["selftest", "--records", "2"], kind="train", group="cmp1", role="learngene")
    base = start(mgr, ["selftest", "--records", "2"], kind="baseline", group="cmp1", role="baseline")
    fresh = make_manager(max_cpu_jobs=2)  # as after a server restart: state comes from files only
    for run_id in (learn, base):
        assert fresh.wait(run_id, timeout=30).state == "done"
    assert [i.run_id for i in fresh.list()] == [base, learn]  # newest first
    assert [i.run_id for i in fresh.list(kind="train")] == [learn]
    assert [i.run_id for i in fresh.list(state="done", group="cmp1")] == [base, learn]
    assert fresh.list(state="failed") == [] and fresh.list(group="other") == []
    pair = fresh.comparison("cmp1")
    assert set(pair) == {"learngene", "baseline"} and pair["baseline"].run_id == base
    assert fresh.get(learn).spec == JobSpec(
        argv=["selftest", "--records", "2"], kind="train", device="cpu", name="train", group="cmp1", role="learngene"
    )


@pytest.mark.parametrize(
    "bad", ["../../etc", "/abs", "a/b", "..", "", ".", "20260101-000000-train-abcdef/..", "20260101-000000-train-zzzzzz"]
)
def test_hostile_run_ids_are_refused(tmp_path, bad):
    mgr = JobManager(tmp_path / "runs")
    for call in (mgr.get, mgr.cancel, mgr.delete, mgr.read_metrics, mgr.log_tail, mgr.run_dir):
        with pytest.raises(ConfigError):
            call(bad)


@pytest.mark.parametrize(
    "spec",
    [
        JobSpec(argv=[]),
        JobSpec(argv=["../x"]),
        JobSpec(argv=["train"], device="tpu"),
        JobSpec(argv=["train"], kind="Bad Kind"),
        JobSpec(argv=["train"], tags={"x": object()}),
    ],
)
def test_bad_specs_are_refused(tmp_path, spec):
    with pytest.raises(ConfigError):
        JobManager(tmp_path / "runs").start(spec)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_pid_identity_guards_against_reuse():
    me = os.getpid()
    assert procs.is_alive(me, procs.start_ticks(me))
    assert not procs.is_alive(me, procs.start_ticks(me) + 1)
    assert not procs.kill_group(os.getpgrp(), None, 0)  # never our own group


def test_jobs_package_does_not_import_torch():
    code = "import sys, learngene.jobs, learngene.jobs.supervisor, learngene.cli.jobs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cli(runs_dir: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    jobs_cli.add_arguments(parser)
    return jobs_cli.run(parser.parse_args(["--runs-dir", str(runs_dir), *argv]))


def test_cli_start_list_show_tail_delete(make_manager, capsys):
    runs_dir = make_manager().runs_dir  # the fixture cleans up what the CLI starts here
    assert _cli(runs_dir, "start", "--name", "cli-run", "--", "selftest", "--records", "2") == 0
    run_id = capsys.readouterr().out.strip()
    assert JobManager(runs_dir).wait(run_id, timeout=30).state == "done"
    _cli(runs_dir, "list", "--state", "done")
    assert run_id in capsys.readouterr().out
    _cli(runs_dir, "show", run_id)
    assert json.loads(capsys.readouterr().out)["spec"]["name"] == "cli-run"
    _cli(runs_dir, "tail", run_id, "-n", "1")
    assert "finished" in capsys.readouterr().out
    _cli(runs_dir, "delete", run_id)
    with pytest.raises(ConfigError):
        _cli(runs_dir, "show", run_id)
    with pytest.raises(ConfigError):
        _cli(runs_dir, "start", "--")
