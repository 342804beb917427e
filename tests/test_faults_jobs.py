"""Regression tests of three faults of the job system, with real processes and files.

1. A status.json (hand-edited or corrupt) must not make a reader, or a cancel, signal a process that is not
   proven to be the run's own: a `setsid sleep` victim named in it survives `jobs list`, `JobManager.list()`,
   `get()` and `cancel()`.
2. One wrongly typed field in one status.json shows that run as "unreadable" (with the reason) and every
   other run normally, in the CLI, the manager and the app's runs table.
3. Run ids and labels are matched whole (a trailing newline is refused); the journal's repair newline
   waits for an appender's lock and goes to the end of the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from learngene.descend.journal import RunJournal
from learngene.errors import ConfigError
from learngene.jobs import JobManager, JobSpec, procs
from learngene.jobs.runs import STATUS_FILE, STATUS_LOCK, read_status, resolve_run_dir
from learngene.jobs.slots import flocked
from learngene.runlog import PROGRESS_FILE, atomic_write_json
from tests._procs import LONG, clean_up, wait_for_progress, wait_until
from tests.conftest import require_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mgr(tmp_path):
    """A JobManager on a tmp runs folder; every process its runs started is killed and reaped afterwards."""
    manager = JobManager(tmp_path / "runs", max_cpu_jobs=2)
    yield manager
    clean_up(manager)


@pytest.fixture
def victim():
    """An unrelated process in its own session and group (`setsid sleep 1000`); killed at the end."""
    proc = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    wait_until(lambda: procs.start_ticks(proc.pid) is not None, 5, "the victim to start")
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def finished_run(mgr: JobManager, **spec) -> str:
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"], **spec))
    info = mgr.wait(run_id, timeout=45)
    assert info.state == "done", (info.reason, info.log_tail)
    return run_id


def cli(runs_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEARNGENE_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "learngene", "jobs", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def write_status(mgr: JobManager, run_id: str, status) -> None:
    (mgr.runs_dir / run_id / STATUS_FILE).write_text(json.dumps(status))


# ------------------------------------------------------------------ 1. no signal without proof


@pytest.mark.parametrize("named", ["worker", "worker+start", "supervisor+start"])
def test_readers_never_signal_a_process_a_status_file_names(mgr, victim, named):
    run_id = finished_run(mgr)
    v, ticks = victim.pid, procs.start_ticks(victim.pid)
    status = {"state": "running", "supervisor_pid": 999999, "worker_pgid": v}  # the reported reproduction: a status naming a foreign group
    if named == "worker+start":  # even the right start time is no proof: the victim is not the run's worker
        status["worker_start"] = ticks
    elif named == "supervisor+start":
        status = {"state": "running", "supervisor_pid": v, "supervisor_start": ticks, "worker_pgid": v,
                  "worker_start": ticks}
    write_status(mgr, run_id, status)
    out = cli(mgr.runs_dir, "list")
    assert out.returncode == 0, out.stderr
    assert victim.poll() is None, "`jobs list` killed a process named by status.json"
    for read in (lambda: mgr.list(), lambda: mgr.get(run_id), lambda: mgr.cancel(run_id)):
        write_status(mgr, run_id, status)
        read()
        assert victim.poll() is None, "a reader killed a process named by status.json"
    assert mgr.get(run_id).state == "failed"  # the verdict is still recorded: the supervisor is gone


def test_cancel_signals_only_the_proven_worker(mgr, victim):
    run_id = mgr.start(JobSpec(argv=LONG))
    info = wait_until(lambda: (i := mgr.get(run_id)).state == "running" and mgr.read_metrics(run_id)[0] and i,
                      what="the worker's first record")
    worker = info.status["worker_pid"]
    ticks = procs.start_ticks(victim.pid)

    def point_at_victim(status):  # the supervisor's later beats keep these fields
        return {**status, "worker_pid": victim.pid, "worker_pgid": victim.pid, "worker_start": ticks}

    from learngene.jobs.runs import update_status

    update_status(info.path, point_at_victim)
    assert mgr.get(run_id).status["worker_pgid"] == victim.pid
    mgr.cancel(run_id)
    info = mgr.wait(run_id, timeout=30)
    assert info.state == "cancelled", (info.reason, info.log_tail)
    assert victim.poll() is None, "cancel signalled a process that is not the run's worker"
    wait_until(lambda: not procs.is_alive(worker), 10, "the real worker to stop")


def test_identity_needs_start_time_and_token():
    me = os.getpid()
    assert not procs.kill_process(me, procs.start_ticks(me), 0)  # never ourselves
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True,
                             env={**os.environ, procs.TOKEN_ENV: "t0ken"})
    try:
        ticks = wait_until(lambda: procs.start_ticks(child.pid), 5, "the child to start")
        assert not procs.kill_group(child.pid, ticks, 0)  # no token given: unproven
        assert not procs.kill_group(child.pid, None, 0, token="t0ken")  # no start time: unproven
        assert not procs.kill_group(child.pid, ticks + 1, 0, token="t0ken")  # another start time
        assert not procs.kill_group(child.pid, ticks, 0, token="other")  # another run's token
        assert not procs.kill_process(child.pid, None, 0, token="t0ken")
        assert procs.kill_process(child.pid, ticks, 0, token="t0ken")
        assert procs.kill_group(child.pid, ticks, signal.SIGKILL, token="t0ken")
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait(timeout=10)


def test_readers_leave_a_proven_worker_alone_and_only_cancel_stops_it(mgr):
    """Readers never kill, even a worker proven (start time + token) to be the run's own: a run whose
    supervisor died is reported failed with its worker still running and the command that stops it;
    `jobs cancel` then stops it."""
    run_id = mgr.start(JobSpec(argv=LONG))
    info = wait_until(lambda: (i := mgr.get(run_id)).state == "running" and mgr.read_metrics(run_id)[0] and i,
                      what="the worker's first record")
    worker = info.status["worker_pid"]
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: mgr.get(run_id).state == "failed", 15, "the failed verdict")
    for argv in (("list",), ("show", run_id), ("list", "--json"), ("tail", run_id, "-n", "2")):
        out = cli(mgr.runs_dir, *argv)
        assert out.returncode == 0, out.stderr
        wait_for_progress(mgr, run_id)  # the worker wrote a record after the reader was done
        assert procs.is_alive(worker), f"`jobs {' '.join(argv)}` killed the run's worker"
    listed = cli(mgr.runs_dir, "list")
    assert f"its worker (pid {worker}) is still running" in listed.stderr
    shown = json.loads(cli(mgr.runs_dir, "show", run_id).stdout)
    assert shown["state"] == "failed" and shown["leftover_worker"] == worker
    assert "supervisor" in shown["reason"] and f"python -m learngene jobs cancel {run_id}" in shown["reason"]
    assert mgr.list()[0].leftover_worker == worker and procs.is_alive(worker)
    out = cli(mgr.runs_dir, "cancel", run_id)
    assert out.returncode == 0 and out.stdout.split() == [run_id, "cancelled"], (out.stdout, out.stderr)
    wait_until(lambda: not procs.is_alive(worker), 10, "the cancel to stop the worker")
    info = mgr.get(run_id)
    assert info.state == "cancelled" and info.leftover_worker is None
    assert "stopped by the cancel" in info.reason and "still running" not in info.reason


# ------------------------------------------------------------------ 2. one bad status hides nothing


BAD_STATUS = [
    ({"state": "running", "supervisor_pid": "abc"}, "supervisor_pid must be an integer, got 'abc'"),
    ({"state": "running", "started_at": "yesterday"}, "started_at must be"),
    ({"state": "done", "started_at": "yesterday"}, "started_at must be"),
    ({"state": "running", "supervisor_pid": True}, "supervisor_pid must be an integer, got True"),
    ({"state": "running", "worker_pgid": -4}, "worker_pgid"),
    ({"state": "failed", "exit_code": 1.5}, "exit_code"),
    ({"state": "running", "heartbeat_mono": "soon"}, "heartbeat_mono"),
    ({"state": "exploded"}, "state must be one of"),
    ({"state": "done", "reason": ["a"]}, "reason must be"),
    ([1, 2], "must be a JSON object"),
    ("{not json", "status.json"),
]


def test_invalid_statuses_show_as_unreadable_and_hide_no_other_run(mgr):
    good = finished_run(mgr, name="good")
    broken = {finished_run(mgr, name=f"broken{i}"): case for i, case in enumerate(BAD_STATUS)}
    text = {}
    for run_id, (bad, _) in broken.items():
        text[run_id] = bad if isinstance(bad, str) else json.dumps(bad)
        (mgr.runs_dir / run_id / STATUS_FILE).write_text(text[run_id])

    infos = {i.run_id: i for i in mgr.list()}
    assert set(infos) == {good, *broken}
    assert infos[good].state == "done"
    for run_id, (_, why) in broken.items():
        assert infos[run_id].state == "unreadable" and why in infos[run_id].reason, infos[run_id].reason
        assert not infos[run_id].live and mgr.get(run_id).state == "unreadable"
        assert (mgr.runs_dir / run_id / STATUS_FILE).read_text() == text[run_id]  # a reader changes nothing
    assert {i.run_id for i in mgr.list(state="unreadable")} == set(broken)
    json.dumps([i.to_dict() for i in infos.values()], default=str)  # as `jobs list --json` does

    out = cli(mgr.runs_dir, "list")
    assert out.returncode == 0, out.stderr
    assert all(run_id in out.stdout for run_id in infos) and "unreadable" in out.stdout
    assert cli(mgr.runs_dir, "list", "--state", "unreadable").stdout.count("unreadable") == len(broken)
    first, (_, why) = next(iter(broken.items()))
    out = cli(mgr.runs_dir, "show", first)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["state"] == "unreadable" and shown["reason"] == f"status.json: {why}"

    from app.logic import history
    from app.ui import widgets

    table = history.runs_table(list(infos.values()))
    assert (table["state"] == "unreadable").sum() == len(broken)
    assert why in table[table["run"] == first].iloc[0]["reason"]
    assert {i.run_id for i in history.filter_runs(list(infos.values()), [], ["unreadable"], "")} == set(broken)
    assert "unreadable" in widgets.STATE_ICONS


def test_app_pages_list_an_unreadable_run_beside_the_others(mgr, monkeypatch):
    """The Runs and Ancestry pages (real AppTest) still list runs when one status.json is spoiled."""
    require_module("streamlit")  # skipped without streamlit on a developer machine; fails under CI
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(mgr.runs_dir))
    good, broken = finished_run(mgr, name="good"), finished_run(mgr, kind="accumulate", name="broken")
    write_status(mgr, broken, {"state": "running", "supervisor_pid": "abc"})
    at = AppTest.from_file(ROOT / "app" / "main.py", default_timeout=90)
    at.run()
    for page in ("runs", "ancestry"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        if page == "runs":
            table = at.dataframe[0].value
            assert set(table["run"]) == {good, broken}
            row = table[table["run"] == broken].iloc[0]
            assert row["state"] == "unreadable" and "supervisor_pid must be an integer" in row["reason"]
            at.multiselect(key="runs-pick").set_value([broken]).run()
            assert not at.exception, [e.value for e in at.exception]
            assert any("unreadable" in e.label for e in at.expander), [e.label for e in at.expander]


def test_status_validation_keeps_what_the_supervisor_writes(tmp_path):
    status = {
        "state": "running", "updated_at": 1.7e9, "heartbeat_mono": 12.5, "heartbeat_at": 1.7e9,
        "supervisor_pid": 123, "supervisor_start": 456, "boot_id": "b", "worker_pid": 124,
        "worker_pgid": 124, "worker_start": None, "started_at": 1.7e9, "ended_at": None, "exit_code": None,
        "reason": None, "log_tail": None, "future_field": {"kept": True},
    }
    atomic_write_json(tmp_path / STATUS_FILE, status)
    assert read_status(tmp_path) == status
    atomic_write_json(tmp_path / STATUS_FILE, {**status, "state": "failed", "exit_code": -9})
    assert read_status(tmp_path)["exit_code"] == -9


def test_invalid_progress_is_ignored(mgr):
    run_id = finished_run(mgr)
    atomic_write_json(mgr.runs_dir / run_id / PROGRESS_FILE, {"done": "x", "total": 3})
    info = mgr.get(run_id)
    assert info.state == "done" and info.progress is None

    from app.logic import history

    assert history.runs_table([info]).iloc[0]["progress"] == 1.0


def test_the_supervisor_repairs_an_unreadable_status_and_finishes(mgr):
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "40", "--interval", "0.05"]))
    run_dir = mgr.runs_dir / run_id
    wait_until(lambda: mgr.get(run_id).state == "running", what="the run to start")
    with flocked(run_dir / STATUS_LOCK):  # the supervisor's next beat waits, so the reader sees the bad file
        (run_dir / STATUS_FILE).write_text('{"state": "running", "supervisor_pid": "abc"}')
        assert mgr.get(run_id).state == "unreadable"
    info = mgr.wait(run_id, timeout=45)
    assert info.state == "done", (info.state, info.reason, info.log_tail)


# ------------------------------------------------------------------ 3. whole matches, locked repair


def test_run_ids_and_labels_with_a_trailing_newline_are_refused(mgr):
    good = "20260101-000000-train-abcdef"
    assert resolve_run_dir(mgr.runs_dir, good).name == good
    for bad in (good + "\n", "train\n"):
        with pytest.raises(ConfigError):
            resolve_run_dir(mgr.runs_dir, bad)
    with pytest.raises(ConfigError):
        JobSpec(argv=["selftest"], kind="train\n").validated()
    with pytest.raises(ConfigError):
        JobSpec(argv=["selftest\n"]).validated()
    for call in (mgr.get, mgr.cancel, mgr.delete, mgr.run_dir):
        with pytest.raises(ConfigError):
            call(good + "\n")
    # A folder whose name only looks like a run id up to a newline is not listed.
    run_id = finished_run(mgr)
    odd = mgr.runs_dir / (run_id + "\n")
    odd.mkdir()
    for name in ("config.json", STATUS_FILE):
        (odd / name).write_bytes((mgr.runs_dir / run_id / name).read_bytes())
    assert [i.run_id for i in mgr.list()] == [run_id]


def test_journal_repair_waits_for_the_appender_and_appends(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = RunJournal(path)
    journal.append([{"identity": ["a"], "fingerprint": "x"}])
    loaded: list = []
    with open(path, "a") as f:  # an appender in the middle of its line, holding the journal's lock
        import fcntl

        fcntl.flock(f, fcntl.LOCK_EX)
        f.write('{"identity": ["b"], ')
        f.flush()
        reader = threading.Thread(target=lambda: loaded.append(journal.load()), daemon=True)
        reader.start()
        reader.join(0.5)  # an unlocked load() ends its "cut" line here, inside the appender's record
        f.write('"fingerprint": "y"}\n')
        f.flush()
    reader.join(10)
    assert not reader.is_alive()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["fingerprint"] for line in lines] == ["x", "y"], lines
    assert set(loaded[0]) == {(("a",), "x"), (("b",), "y")}
    # A line really cut by a kill is ended at the end of the file, and the next append starts afresh.
    with open(path, "a") as f:
        f.write('{"identity": ["c"]')
    assert set(journal.load()) == {(("a",), "x"), (("b",), "y")}
    journal.append([{"identity": ["d"], "fingerprint": "z"}])
    assert set(journal.load()) == {(("a",), "x"), (("b",), "y"), (("d",), "z")}
