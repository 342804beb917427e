"""Warm start with real processes: jobs forked by the runs folder's fork server keep the whole job contract.

One fork server (loaded once for the module) serves most tests; the tests that stop, break or refuse a
server use runs folders of their own. Every process the runs started is killed afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from learngene.jobs import JobManager, JobSpec, procs, warm
from learngene.jobs.runs import update_status
from tests._procs import LONG, kill_runs_under, wait_until

READY_S = 120.0  # loading torch and timm on a busy 2-core machine


def _clean(runs: Path, managers: list[JobManager]) -> None:
    warm.stop_server(runs, timeout=5)
    for _ in range(2):
        kill_runs_under(runs.resolve())
    for m in managers:
        for proc in m._children:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A runs folder whose fork server is ready."""
    runs = tmp_path_factory.mktemp("warm") / "runs"
    mgr = JobManager(runs, max_cpu_jobs=2, warm_start=True)
    assert mgr.warm_up()
    assert warm.wait_until_ready(runs, READY_S), (warm.private_dir(runs) / warm.LOG_NAME).read_text()
    yield runs
    _clean(runs, [mgr])


@pytest.fixture
def mgr(served):
    manager = JobManager(served, max_cpu_jobs=2, warm_start=True, grace_s=1.0)
    yield manager
    for info in manager.list():
        if info.live:
            manager.cancel(info.run_id)
    for info in manager.list():
        manager.wait(info.run_id, timeout=30)


def running(mgr: JobManager, run_id: str):
    """The run once its worker has written (and logged) a first record."""
    def ready():
        info = mgr.get(run_id)
        assert info.state in ("queued", "running"), (info.state, info.reason, info.log_tail)
        return info.state == "running" and mgr.read_metrics(run_id)[0] and "record 1/" in mgr.log_tail(run_id) and info
    return wait_until(ready, 60, "a first record")


def token_of(info) -> str:
    return json.loads((info.path / "config.json").read_text())["token"]


def parent_of(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rfind(b")") + 2:].split()[1])


def test_a_forked_worker_keeps_the_job_contract_and_cancel_stops_its_tree(mgr, served):
    server = warm.server_state(served)["pid"]
    run_id = mgr.start(JobSpec(argv=[*LONG, "--spawn-child"]))
    info = running(mgr, run_id)
    st, token = info.status, token_of(info)
    worker, child = st["worker_pid"], json.loads((info.path / "outputs" / "child.pid").read_text())
    assert st["start"] == "warm", st.get("warm_refused")
    assert parent_of(parent_of(worker)) == server  # forked by a keeper the server forked
    supervisor = st["supervisor_pid"]  # forked too (by a launcher that exited), and proven the run's
    assert b"learngene.jobs.forkserver" in Path(f"/proc/{supervisor}/cmdline").read_bytes()
    assert procs.is_ours(supervisor, st["supervisor_start"], token) and os.getsid(supervisor) == supervisor
    assert (info.path / "supervisor.log").read_text() == ""
    assert os.getpgid(worker) == worker and os.getsid(worker) == worker and os.getpgid(child) == worker
    assert os.readlink(f"/proc/{worker}/fd/1") == str(info.path / "log.txt")
    assert os.readlink(f"/proc/{worker}/fd/2") == str(info.path / "log.txt")
    assert os.readlink(f"/proc/{worker}/cwd") == os.getcwd()
    assert procs.is_ours(worker, st["worker_start"], token) and procs.carries_token(child, token)
    child_env = dict(v.split(b"=", 1) for v in Path(f"/proc/{child}/environ").read_bytes().split(b"\0") if b"=" in v)
    assert child_env[b"LEARNGENE_RUN_DIR"] == str(info.path).encode()  # what the worker's os.environ held
    assert f"selftest: pid {worker} writing" in mgr.log_tail(run_id, 50)
    mgr.cancel(run_id)
    info = mgr.wait(run_id, timeout=30)
    assert info.state == "cancelled" and info.exit_code == -signal.SIGTERM, (info.reason, info.log_tail)
    wait_until(lambda: not procs.is_alive(worker) and not procs.is_alive(child), 10, "worker and child to die")
    assert warm.is_ready(served)  # the server serves on


@pytest.mark.parametrize("argv, state, code, reason", [
    (["--exit-code", "7"], "failed", 7, "exited with code 7"),
    (["--diverge"], "diverged", 3, "diverged"),
])
def test_exit_codes_reach_the_supervisor(mgr, argv, state, code, reason):
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0", *argv]))
    info = mgr.wait(run_id, timeout=60)
    assert (info.state, info.exit_code, info.status["start"]) == (state, code, "warm"), (info.reason, info.log_tail)
    assert reason in info.reason


def test_a_crash_and_a_sigterm_ignoring_worker(mgr):
    crash = mgr.start(JobSpec(argv=LONG))
    info = running(mgr, crash)
    os.kill(info.status["worker_pid"], signal.SIGKILL)
    info = mgr.wait(crash, timeout=30)
    assert info.state == "failed" and info.exit_code == -9 and "killed by signal 9" in info.reason
    assert "selftest: record 1/" in info.log_tail
    stubborn = mgr.start(JobSpec(argv=[*LONG, "--ignore-sigterm"]))
    running(mgr, stubborn)
    mgr.cancel(stubborn)
    info = mgr.wait(stubborn, timeout=30)
    assert info.state == "cancelled" and info.exit_code == -signal.SIGKILL and "SIGKILL" in info.reason


def test_forked_workers_get_the_thread_counts_of_cold_ones(served):
    """The server ran no torch operation: a forked worker's OpenMP pool starts fresh, with torch's
    default thread count or the one it sets, exactly as in a cold worker (a pool inherited from the
    server would hang the first parallel operation)."""
    seen = {}
    for warm_start in (True, False):
        m = JobManager(served, max_cpu_jobs=2, warm_start=warm_start)
        for threads in (0, 1, 2):
            run_id = m.start(JobSpec(argv=["selftest", "--records", "1", "--torch-threads", str(threads)]))
            info = m.wait(run_id, timeout=120)
            assert info.state == "done", (info.reason, info.log_tail)
            assert info.status["start"] == ("warm" if warm_start else "cold")
            out = json.loads((info.path / "outputs" / "torch.json").read_text())
            assert out["finite"]
            seen[warm_start, threads] = (out["default_threads"], out["threads"])
    for threads in (0, 1, 2):
        assert seen[True, threads] == seen[False, threads]
    assert seen[True, 1][1] == 1 and seen[True, 2][1] == 2


def test_only_the_proven_worker_is_signalled_not_the_server_nor_another_run(mgr, served):
    a, b = mgr.start(JobSpec(argv=LONG)), mgr.start(JobSpec(argv=LONG))
    ia, ib = running(mgr, a), running(mgr, b)
    worker_a, worker_b = ia.status["worker_pid"], ib.status["worker_pid"]
    server = warm.server_state(served)
    keeper_a = parent_of(worker_a)
    assert not procs.is_ours(worker_a, ia.status["worker_start"], token_of(ib))  # b's token proves not a's worker
    for pid, start in ((server["pid"], server["start"]), (keeper_a, procs.start_ticks(keeper_a))):
        for token in (token_of(ia), token_of(ib), warm.TOKEN_PLACEHOLDER):
            assert not procs.is_ours(pid, start, token) and not procs.kill_group(pid, start, 0, token=token)

    def point_at_a(status):
        return {**status, "worker_pid": worker_a, "worker_pgid": worker_a, "worker_start": ia.status["worker_start"]}

    update_status(ib.path, point_at_a)
    mgr.cancel(b)
    assert mgr.wait(b, timeout=30).state == "cancelled"
    wait_until(lambda: not procs.is_alive(worker_b), 10, "b's own worker to stop")
    assert procs.is_alive(worker_a) and mgr.get(a).state == "running", "b's cancel signalled a's worker"
    assert procs.is_alive(server["pid"], server["start"])


def test_a_forked_worker_left_by_its_lost_supervisor_is_stopped_only_by_cancel(mgr):
    run_id = mgr.start(JobSpec(argv=LONG))
    info = running(mgr, run_id)
    worker, token = info.status["worker_pid"], token_of(info)
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)
    info = wait_until(lambda: (i := mgr.get(run_id)).state == "failed" and i, 30, "the failed verdict")
    assert info.leftover_worker == worker and procs.is_alive(worker) and procs.carries_token(worker, token)
    mgr.cancel(run_id)  # no supervisor: the cancel itself stops the worker, proven by its start and token
    wait_until(lambda: not procs.is_alive(worker), 15, "the cancel to stop the worker")
    assert mgr.get(run_id).state == "cancelled"


def _request(runs: Path, request: dict, fds: list[int]) -> dict:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = os.open(warm.private_dir(runs), os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock.settimeout(30)
        sock.connect(warm.socket_address(fd))
        socket.send_fds(sock, [json.dumps(request).encode()], fds)
        return json.loads(sock.recv(warm.MAX_MESSAGE))
    finally:
        os.close(fd)
        sock.close()


def test_the_server_runs_only_learngene_commands_in_its_own_environment(served, tmp_path):
    folder = warm.private_dir(served)
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.stat(folder / warm.SOCKET_NAME).st_mode & 0o077 == 0
    env = {**os.environ, procs.TOKEN_ENV: "ab" * 16}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(warm.CODE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    base = {"argv": ["selftest", "--records", "1"], "env": env, "cwd": str(tmp_path), "python": sys.executable}
    bad = [
        ({"argv": ["-c", "import os"]}, "learngene command name"),
        ({"argv": ["rm", "-rf", "/"]}, "not a learngene command"),
        ({"env": {**env, "LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD"),
        ({"env": {**env, "PYTHONPATH": "/tmp"}}, "PYTHONPATH"),
        ({"python": "/usr/bin/python3"}, "this server runs"),
        ({"cwd": "relative"}, "cwd"),
        ({"code": "print(1)"}, "exactly argv (or supervise), env, cwd and python"),
    ]
    with open(tmp_path / "log.txt", "ab") as log, open(tmp_path / "slot.lock", "wb") as lock:
        for change, words in bad:
            answer = _request(served, {**base, **change}, [log.fileno(), lock.fileno()])
            assert answer["ok"] is False and words in answer["reason"], (change, answer)
        answer = _request(served, base, [log.fileno()])
        assert not answer["ok"] and "expected 2 descriptor(s)" in answer["reason"]
        supervise = {k: v for k, v in base.items() if k != "argv"}
        for folder in ("/tmp", str(served / "20261206-000000-x-abcdef"), str(tmp_path)):
            answer = _request(served, {**supervise, "supervise": folder}, [log.fileno()])
            assert not answer["ok"] and "is not a run folder of" in answer["reason"], answer
    assert (tmp_path / "log.txt").read_bytes() == b""  # nothing ran
    assert warm.is_ready(served)


def test_without_a_server_jobs_start_cold_and_a_lost_server_loses_no_job(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    managers = [JobManager(runs, max_cpu_jobs=2, warm_start=False)]
    try:
        cold = managers[0].start(JobSpec(argv=["selftest", "--records", "1"]))
        info = managers[0].wait(cold, timeout=60)
        assert info.state == "done" and info.status["start"] == "cold" and not warm.is_running(runs)
        assert not managers[0].warm_up() and not warm.is_running(runs)  # a cold manager starts no server
        managers.append(JobManager(runs, max_cpu_jobs=2, warm_start=True))
        mgr = managers[1]
        first = mgr.start(JobSpec(argv=LONG))  # starts the server and waits for it to load
        info = wait_until(lambda: (i := mgr.get(first)).state == "running" and mgr.read_metrics(first)[0] and i,
                          READY_S, "the first warm record")
        assert info.status["start"] == "warm", info.status.get("warm_refused")
        server = warm.server_state(runs)
        os.kill(server["pid"], signal.SIGKILL)  # the job lives on: its keeper and worker have their own sessions
        wait_until(lambda: not procs.is_alive(server["pid"], server["start"]), 10, "the server to die")
        assert mgr.get(first).state == "running"
        monkeypatch.setenv("LEARNGENE_UNRELATED_SETTING", "changed")  # the next server is started with it
        mgr.cancel(first)
        assert mgr.wait(first, timeout=30).exit_code == -signal.SIGTERM  # the exit code still arrived
        assert mgr.warm_up() and warm.wait_until_ready(runs, READY_S)
        second = mgr.start(JobSpec(argv=["selftest", "--records", "1"]))
        info = mgr.wait(second, timeout=READY_S)
        assert info.state == "done" and info.status["start"] == "warm"  # a new server, started on demand
        monkeypatch.setenv("LEARNGENE_UNRELATED_SETTING", "changed again")  # now the server's env differs
        third = mgr.start(JobSpec(argv=["selftest", "--records", "1"]))
        info = mgr.wait(third, timeout=60)
        assert info.state == "done" and info.status["start"] == "cold"
        assert "LEARNGENE_UNRELATED_SETTING" in info.status["warm_refused"]
    finally:
        _clean(runs, managers)


def test_a_server_folder_open_to_others_is_not_used(tmp_path):
    runs = tmp_path / "runs"
    warm.private_dir(runs).mkdir(parents=True, mode=0o755)
    os.chmod(warm.private_dir(runs), 0o755)
    mgr = JobManager(runs, max_cpu_jobs=2, warm_start=True)
    try:
        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"]))
        info = mgr.wait(run_id, timeout=60)
        assert info.state == "done" and info.status["start"] == "cold" and not warm.is_running(runs)
    finally:
        _clean(runs, [mgr])


def test_cli_forkserver_start_status_stop(tmp_path):
    runs = tmp_path / "runs"
    cli = [sys.executable, "-m", "learngene", "jobs", "--runs-dir", str(runs), "forkserver"]
    try:
        out = subprocess.run([*cli, "start", "--wait", str(READY_S)], capture_output=True, text=True, timeout=200)
        assert out.returncode == 0, out.stderr
        state = json.loads(out.stdout)
        assert state["state"] == "ready" and procs.is_alive(state["pid"], state["start"])
        assert json.loads(subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout)["pid"] == state["pid"]
        out = subprocess.run([*cli, "stop"], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "stopped" and not procs.is_alive(state["pid"], state["start"])
        assert json.loads(subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=60).stdout) == {
            "state": "not running"}
    finally:
        _clean(runs, [])


def test_a_server_whose_code_changed_on_disk_exits_instead_of_running_old_code(tmp_path):
    runs = tmp_path / "runs"
    mgr = JobManager(runs, max_cpu_jobs=2, warm_start=True)
    source = warm.CODE_ROOT / "learngene" / "text.py"
    before = os.stat(source)
    try:
        assert mgr.warm_up() and warm.wait_until_ready(runs, READY_S)
        old = warm.server_state(runs)
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # as an edit would
        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"]))
        info = mgr.wait(run_id, timeout=60)
        assert info.state == "done" and info.status["start"] == "cold", info.status
        wait_until(lambda: not procs.is_alive(old["pid"], old["start"]), 10, "the stale server to exit")
        assert mgr.warm_up() and warm.wait_until_ready(runs, READY_S)  # a fresh one loads the code as it is now
        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"]))
        assert mgr.wait(run_id, timeout=60).status["start"] == "warm"
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        _clean(runs, [mgr])
