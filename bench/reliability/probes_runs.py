"""Probes of jobs, run folders, run ids, the journal and the app server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.reliability.runner import (
    EXIT_DIVERGED,
    EXIT_OK,
    EXIT_USAGE,
    FAKE_RUN_ID,
    HOSTILE_LOG,
    HOSTILE_LOG_SHOWN,
    HOSTILE_NAME,
    LONG,
    TINY,
    Ctx,
    Outcome,
    _judged,
    _rc_text,
    _short,
    controls,
    eventually,
    one_line_error,
)

# ------------------------------------------------------------------ no signal without proof; readers never kill


def probe_forged_status(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run()
    victim = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        time.sleep(0.2)
        status = {"state": "running", "supervisor_pid": 999999, "worker_pgid": victim.pid}
        (ctx.runs / run_id / "status.json").write_text(json.dumps(status))
        proc = ctx.cli("jobs", "list")
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait(timeout=10)
    good = proc.returncode == 0 and alive and "Traceback" not in proc.stderr
    return Outcome(good, f"{_rc_text(proc)}; victim {'alive' if alive else 'KILLED'}")


def probe_kill_supervisor(ctx: Ctx) -> Outcome:
    from learngene.jobs import procs

    runs = ctx.scratch("kill-supervisor") / "runs"
    mgr, run_id, info = ctx.running_job(runs)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)
    listing, show = ctx.cli("jobs", "list", runs=runs), ctx.cli("jobs", "show", run_id, runs=runs)
    time.sleep(0.3)
    left_alone = procs.is_alive(worker, start)
    shown = json.loads(show.stdout) if show.returncode == 0 else {}
    said = f"worker (pid {worker}) is still running" in listing.stderr and f"jobs cancel {run_id}" in listing.stderr
    cancel = ctx.cli("jobs", "cancel", run_id, runs=runs)
    stopped = eventually(lambda: not procs.is_alive(worker, start), 15)
    final = mgr.get(run_id).state
    return _judged([(listing.returncode == 0 and show.returncode == 0, "list/show exit 0"),
                    (shown.get("state") == "failed", "shown failed"),
                    (left_alone, "the readers left the worker alone"),
                    (cancel.returncode == 0 and stopped and final == "cancelled", "`jobs cancel` stopped it")],
                   [(said and shown.get("leftover_worker") == worker, "they say it still runs and how to stop it")])


def probe_kill_worker(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("kill-worker") / "runs"
    mgr, run_id, info = ctx.running_job(runs)
    os.kill(info.status["worker_pid"], signal.SIGKILL)
    info = mgr.wait(run_id, timeout=30)
    show = ctx.cli("jobs", "show", run_id, runs=runs)
    return _judged([(info.state == "failed" and info.exit_code == -9, f"state {info.state}, exit code {info.exit_code}"),
                    (show.returncode == 0, "`jobs show` exit 0")],
                   [("killed by signal 9" in (info.reason or ""), f"reason: {info.reason}")])


# ------------------------------------------------------------------ divergence on the last step


def probe_diverge_last_step(ctx: Ctx) -> Outcome:
    proc = ctx.cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY, "--lr", "1e30",
                   "--run-dir", str(ctx.scratch("diverge") / "run"))
    good = proc.returncode == EXIT_DIVERGED and "diverged" in proc.stderr and "Traceback" not in proc.stderr
    last = [line for line in proc.stderr.splitlines() if "diverged" in line]
    return Outcome(good, f"{_rc_text(proc)}: {_short(last[-1] if last else proc.stderr[-200:])}")


def probe_diverge_job(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("diverge-job") / "runs"
    start = ctx.cli("jobs", "start", "--", "train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY,
                    "--lr", "1e30", runs=runs)
    if start.returncode != 0:
        return one_line_error(start, EXIT_OK)
    info = ctx.manager(runs).wait(start.stdout.strip(), timeout=150)
    return Outcome(info.state == "diverged" and info.exit_code == EXIT_DIVERGED,
                   f"state {info.state}, exit code {info.exit_code}")


def probe_weight_decay_inf(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY, "--weight-decay", "inf")
    if proc.returncode == EXIT_DIVERGED:  # trained and marked diverged: also a documented outcome
        return Outcome("Traceback" not in proc.stderr, f"{_rc_text(proc)}: diverged")
    return one_line_error(proc, EXIT_USAGE, "--weight-decay")


# ------------------------------------------------------------------ one bad status.json hides nothing


def probe_mistyped_status(ctx: Ctx) -> Outcome:
    good_id, bad_id = ctx.finished_run("good"), ctx.finished_run("broken")
    (ctx.runs / bad_id / "status.json").write_text(json.dumps({"state": "running", "supervisor_pid": "abc"}))
    proc = ctx.cli("jobs", "list")
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    good = (proc.returncode == 0 and good_id in rows and bad_id in rows and "unreadable" in rows[bad_id]
            and "done" in rows[good_id] and "Traceback" not in proc.stderr)
    seen = f"good run {'listed' if good_id in rows else 'MISSING'}, broken run " \
           f"{'unreadable' if bad_id in rows and 'unreadable' in rows[bad_id] else 'NOT shown unreadable'}"
    return Outcome(good, f"{_rc_text(proc)}; {seen}")


def probe_mistyped_status_show(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("mistyped-show") / "runs"
    mgr = ctx.manager(runs)
    from learngene.jobs import JobSpec

    ids = [mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"], name=n)) for n in ("a", "b")]
    for run_id in ids:
        mgr.wait(run_id, timeout=60)
    (runs / ids[1] / "status.json").write_text(json.dumps({"state": "running", "started_at": "yesterday"}))
    show = ctx.cli("jobs", "show", ids[1], runs=runs)
    shown = json.loads(show.stdout) if show.returncode == 0 else {}
    with ctx.in_process(runs):
        from app.logic import history  # the table of the app's Runs page

        table = history.runs_table(mgr.list())
    return _judged([(show.returncode == 0 and shown.get("state") == "unreadable", "`jobs show` exit 0, unreadable"),
                    (sorted(table["run"]) == sorted(ids) and "unreadable" in list(table["state"]),
                     "the app's runs table lists both runs")],
                   [("started_at" in (shown.get("reason") or ""), "the reason names started_at")])


def probe_corrupt_status(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run("corrupt")
    (ctx.runs / run_id / "status.json").write_bytes(b'{"state": "runn\xff')
    listing, show = ctx.cli("jobs", "list"), ctx.cli("jobs", "show", run_id)
    row = next((line for line in listing.stdout.splitlines() if run_id in line), "")
    reason = json.loads(show.stdout).get("reason", "") if show.returncode == 0 else ""
    return _judged([(listing.returncode == 0 and "unreadable" in row, "listed unreadable"),
                    (show.returncode == 0 and "Traceback" not in show.stderr, "`jobs show` exit 0")],
                   [("not valid JSON" in reason, f"reason: {_short(reason, 60)}")])


# ------------------------------------------------------------------ the runs folder deleted or renamed


def probe_runs_deleted(ctx: Ctx) -> Outcome:
    from learngene.jobs import JobSpec, procs

    runs = ctx.scratch("runs-deleted") / "runs"
    mgr, first, info = ctx.running_job(runs, via_cli=False, max_cpu_jobs=1)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    deadline = time.monotonic() + 10
    while runs.exists():  # the worker may write a file while the tree goes
        try:
            shutil.rmtree(runs)
        except OSError:
            if time.monotonic() > deadline:
                raise
    second = mgr.start(JobSpec(argv=LONG))  # recreates the folder and a fresh slot lock
    stopped = eventually(lambda: not procs.is_alive(worker, start), 20)
    alone = eventually(lambda: [i.run_id for i in mgr.list(state="running")] == [second], 30)
    trace = (runs / first).exists()
    mgr.cancel(second)
    return _judged([(stopped, "the first job stopped once its folder was gone"),
                    (alone, "the next job then ran alone (the 1-slot limit held)"),
                    (not trace, "nothing of the first job in the new folder")])


def probe_runs_renamed(ctx: Ctx) -> Outcome:
    from learngene.jobs import procs
    from learngene.jobs.runs import read_status

    runs = ctx.scratch("runs-renamed") / "runs"
    mgr, run_id, info = ctx.running_job(runs, via_cli=False, max_cpu_jobs=1)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    moved = runs.with_name("moved")
    os.rename(runs, moved)
    stopped = eventually(lambda: not procs.is_alive(worker, start), 20)
    final = eventually(lambda: read_status(moved / run_id).get("state") not in ("queued", "running"), 20)
    status = read_status(moved / run_id)
    stray = eventually(lambda: not (runs / run_id).exists(), 10)
    return _judged([(stopped, "the job stopped"),
                    (final and status.get("state") == "failed", "recorded failed in the moved folder"),
                    (stray, "no run folder recreated at the old place")],
                   [("moved or deleted" in (status.get("reason") or ""), "the reason says the folder moved")])


# ------------------------------------------------------------------ control characters; weak 11 and good: run ids


def probe_ansi_name(ctx: Ctx) -> Outcome:
    start = ctx.cli("jobs", "start", "--name", HOSTILE_NAME, "--", "selftest", "--records", "1", "--interval", "0")
    if start.returncode != 0:
        return one_line_error(start, EXIT_OK)
    run_id = start.stdout.strip()
    state = ctx.manager().wait(run_id, timeout=60).state
    listing = ctx.cli("jobs", "list")
    row = next((line for line in listing.stdout.splitlines() if run_id in line), "")
    shown = controls(start.stdout + listing.stdout)
    good = state == "done" and listing.returncode == 0 and row.endswith(" evil name") and not shown
    return Outcome(good, f"run {state}; listed as {row.split()[-2:] if row else 'MISSING'}; "
                         f"{len(shown)} control characters printed")


def probe_tail_controls(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run("tail")
    with open(ctx.runs / run_id / "log.txt", "a", encoding="utf-8") as f:  # what a worker could print
        f.write(HOSTILE_LOG)
    proc = ctx.cli("jobs", "tail", run_id, "-n", "3")
    shown = controls(proc.stdout, keep="\n\t")
    return _judged([(proc.returncode == 0 and "Traceback" not in proc.stderr, "exit 0"),
                    (not shown, f"{len(shown)} control characters printed")],
                   [(HOSTILE_LOG_SHOWN in proc.stdout, "the log's lines and tab kept")])


def probe_run_id_newline(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", FAKE_RUN_ID + "\n"), EXIT_USAGE, "is not a run id")


def probe_run_id_dotdot(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", "../x"), EXIT_USAGE, "is not a run id")


def probe_hostile_run_ids(ctx: Ctx) -> Outcome:
    decoy = ctx.root / "decoy"  # beside the runs folder, shaped like a finished run
    decoy.mkdir(exist_ok=True)
    (decoy / "config.json").write_text("{}")
    (decoy / "status.json").write_text('{"state": "done"}')
    ids = ["../decoy", "../../etc", "/etc/passwd", "a/b", "20260101-000000-train-zzzzzz"]
    results = [(run_id, action, ctx.cli("jobs", action, run_id)) for run_id in ids
               for action in ("show", "cancel", "delete", "tail")]
    outcomes = [one_line_error(proc, EXIT_USAGE) for _, _, proc in results]
    wrong = [f"{action} {run_id!r}: {o.observed}" for (run_id, action, _), o in zip(results, outcomes, strict=True)
             if not o.good]
    intact = (decoy / "config.json").is_file() and Path("/etc/passwd").is_file()
    return Outcome(not wrong and intact, f"{len(results) - len(wrong)} of {len(results)} refused in one line; "
                   f"{'nothing outside the runs folder touched' if intact else 'a file outside the runs folder was REMOVED'}"
                   + (f"; {_short(wrong[0], 60)}" if wrong else ""))


# ------------------------------------------------------------------ the journal of finished runs


def _entry(i: int, who: str = "a") -> dict[str, Any]:
    return {"identity": [who, i], "fingerprint": f"{who}{i}", "final_acc": 0.5}


def probe_journal_repair_locked(ctx: Ctx) -> Outcome:
    import fcntl

    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-lock") / "journal.jsonl"
    journal = RunJournal(path)
    journal.append([_entry(0)])
    loaded: list = []
    with open(path, "a") as f:  # an appender in the middle of its line, holding the journal's lock
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write('{"identity": ["a", 1], ')
        f.flush()
        reader = threading.Thread(target=lambda: loaded.append(journal.load()), daemon=True)
        reader.start()
        reader.join(0.5)
        waited = reader.is_alive()  # an unlocked load() would have "repaired" the line inside the record
        f.write('"fingerprint": "a1"}\n')
        f.flush()
    reader.join(10)
    lines = path.read_text().splitlines()
    intact = [json.loads(line).get("fingerprint") for line in lines] == ["a0", "a1"]
    return _judged([(waited, "load() waited for the appender's lock"),
                    (intact and loaded and len(loaded[0]) == 2, "both records whole, no newline inside one")])


def _append_many(path: str, who: str, n: int) -> None:
    from learngene.descend.journal import RunJournal

    journal = RunJournal(path)
    for i in range(n):
        journal.append([_entry(i, who)])


def probe_journal_concurrent(ctx: Ctx) -> Outcome:
    import multiprocessing

    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-many") / "journal.jsonl"
    forked = multiprocessing.get_context("fork")
    writers = [forked.Process(target=_append_many, args=(str(path), f"w{k}", 40)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    lines = path.read_text().splitlines()
    whole = sum(1 for line in lines if line.startswith("{") and line.endswith("}"))
    found = RunJournal(path).load()
    return _judged([(all(w.exitcode == 0 for w in writers), "4 writer processes x 40 appends"),
                    (len(lines) == whole == 160 and len(found) == 160, f"{len(found)} of 160 records read back whole")])


def probe_journal_torn(ctx: Ctx) -> Outcome:
    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-torn") / "journal.jsonl"
    journal = RunJournal(path)
    journal.append([_entry(0)])
    with open(path, "a") as f:  # a study killed in the middle of its append
        f.write('{"identity": ["a", 1], "fingerp')
    first = journal.load()
    journal.append([_entry(2)])
    second = journal.load()
    return _judged([(set(first) == {(("a", 0), "a0")}, "the cut line skipped"),
                    (set(second) == {(("a", 0), "a0"), (("a", 2), "a2")}, "the next append starts its own line")])


# ------------------------------------------------------------------ the app server


def probe_xsrf(ctx: Ctx) -> Outcome:
    port = ctx.server()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/upload_file/session/file", data=b"x",
                                 method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return Outcome(False, f"an upload without an XSRF token got HTTP {r.status}")
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()[:100].decode(errors="replace")
    return Outcome(code == 403 and "XSRF" in body, f"an upload without an XSRF token got HTTP {code}: {_short(body, 60)}")


def _listening(port: int) -> list[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port and len(address) == width:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    out.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    out.append(socket.inet_ntop(socket.AF_INET6, words))
    return out


def probe_loopback(ctx: Ctx) -> Outcome:
    port = ctx.server()
    addresses = _listening(port)
    loopback = all(a.startswith("127.") or a == "::1" for a in addresses)
    return Outcome(bool(addresses) and loopback, f"`make app` listens on {', '.join(addresses) or 'nothing'}")


