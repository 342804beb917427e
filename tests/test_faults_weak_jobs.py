"""Regression tests of weak spots of the job system and the studio, with real
processes and folders.

1. The runs folder deleted or renamed under a running job: the job notices (its run folder and slot lock are
   known by identity), stops its worker and says why; it neither keeps a slot a new job cannot see nor
   writes into a recreated folder.
2. Uploads: each upload gets its own folder (a failing one leaves an earlier good import alone), and a very
   long file name is shortened (suffix kept) instead of failing with "File name too long".
3. Control characters in user strings (job names, tags, upload names) and in a run's log (`jobs tail`, with
   and without `--follow`) never reach a terminal or a page; the log keeps its newlines and tabs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from learngene.jobs import JobManager, JobSpec, procs
from learngene.jobs.runs import STATUS_FILE, read_status
from tests._procs import LONG, clean_up, kill_runs_under, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mgr(tmp_path):
    """A JobManager (one cpu slot) on a tmp runs folder; every process its runs started is killed and reaped."""
    manager = JobManager(tmp_path / "runs", max_cpu_jobs=1, grace_s=2.0)
    yield manager
    clean_up(manager)


def worker_of(mgr: JobManager, run_id: str) -> int:
    """Wait until the run's worker has written a record; its pid."""
    info = wait_until(lambda: (i := mgr.get(run_id)).state == "running" and mgr.read_metrics(run_id)[0] and i,
                      what="the worker's first record")
    return info.status["worker_pid"]


def gone(pid: int) -> bool:
    return not procs.is_alive(pid)


def delete_tree(path: Path) -> None:
    """rmtree that retries while a worker still writes files into the tree."""
    deadline = time.monotonic() + 10
    while path.exists():
        try:
            shutil.rmtree(path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# ------------------------------------------------------------------ 1. runs folder deleted or renamed


def test_deleting_the_runs_folder_stops_the_run_so_the_slot_limit_holds(mgr):
    first = mgr.start(JobSpec(argv=LONG))
    worker = worker_of(mgr, first)
    delete_tree(mgr.runs_dir)
    second = mgr.start(JobSpec(argv=LONG))  # recreates the runs folder and a fresh slot lock
    wait_until(lambda: gone(worker), 15, "the first worker to stop once its runs folder is gone")
    worker_of(mgr, second)
    assert [i.run_id for i in mgr.list(state="running")] == [second]
    wait_until(lambda: not (mgr.runs_dir / first).exists(), 10, "no trace of the deleted run in the new folder")


def test_renaming_the_runs_folder_stops_the_run_and_says_so_where_it_went(mgr, tmp_path):
    run_id = mgr.start(JobSpec(argv=LONG))
    worker = worker_of(mgr, run_id)
    moved = tmp_path / "moved"
    os.rename(mgr.runs_dir, moved)
    try:
        wait_until(lambda: gone(worker), 15, "the worker to stop once its run folder moved")
        status = wait_until(lambda: (s := read_status(moved / run_id))["state"] != "running" and s, 15,
                            "a final state in the moved folder")
        assert status["state"] == "failed" and "moved or deleted" in status["reason"], status
        assert str(moved / run_id) in status["reason"]
        info = JobManager(moved).get(run_id)
        assert info.state == "failed" and "moved or deleted" in info.reason
        # nothing of the run is left in a recreated folder at the old place (what the worker wrote is removed)
        wait_until(lambda: not (mgr.runs_dir / run_id).exists(), 10, "no stray run folder at the old place")
        assert not (mgr.runs_dir / run_id / STATUS_FILE).exists()
    finally:
        kill_runs_under(moved.resolve())


def test_a_slot_lock_file_replaced_under_a_running_job_stops_it(mgr):
    run_id = mgr.start(JobSpec(argv=LONG))
    worker = worker_of(mgr, run_id)
    lock = mgr.runs_dir / ".locks" / "cpu-0.lock"
    lock.unlink()  # the next run would make a fresh lock file and start beside it
    wait_until(lambda: gone(worker), 15, "the worker to stop once its slot lock was replaced")
    info = mgr.wait(run_id, timeout=15)
    assert info.state == "failed" and "lock file" in info.reason, info.reason


# ------------------------------------------------------------------ 3. control characters in user strings

HOSTILE = "\x1b[2J\x1b]0;pwned\x07evil\x9b31m\tname\x7f\u202e"


def cli(runs_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEARNGENE_RUNS_DIR": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "learngene", "jobs", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_printable_strips_escape_sequences_and_controls():
    from learngene.text import printable

    assert printable(HOSTILE) == "evil name"
    assert printable("\x1b[31mred\x1b[0m ok\x00 é 中") == "red ok é 中"
    assert printable("x" * 50, 10) == "x" * 9 + "…"


def test_a_hostile_job_name_reaches_neither_the_terminal_nor_the_runs_table(mgr):
    out = cli(mgr.runs_dir, "start", "--name", HOSTILE, "--", "selftest", "--records", "1", "--interval", "0")
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert mgr.wait(run_id, timeout=45).state == "done"
    listing = cli(mgr.runs_dir, "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if run_id in line)
    assert row.endswith(" evil name") and not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in listing.stdout
                                                  if c != "\n"), repr(listing.stdout)

    from app.logic import history

    table = history.runs_table(mgr.list())
    assert list(table["name"]) == ["evil name"]


LOG_HOSTILE = "col\tumn \x1b[2J\x1b]0;pwned\x07\x9b31mred\x00\u202egone\x1b[0m\r\nnext line\n"
LOG_SHOWN = "col\tumn redgone\nnext line"


def controls(text: str) -> list[str]:
    """Control characters other than newline and tab (what must not reach a terminal)."""
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f
            or c in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"]


def test_jobs_tail_strips_controls_from_the_log_and_keeps_its_lines(mgr):
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "2", "--interval", "0"]))
    assert mgr.wait(run_id, timeout=45).state == "done"
    with open(mgr.runs_dir / run_id / "log.txt", "a", encoding="utf-8") as f:  # what a worker printed
        f.write(LOG_HOSTILE)
    out = cli(mgr.runs_dir, "tail", run_id, "-n", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(LOG_SHOWN + "\n"), repr(out.stdout)
    assert "selftest: finished" in out.stdout and not controls(out.stdout), repr(out.stdout)

    from learngene.text import printable

    assert printable(LOG_HOSTILE, keep_lines=True) == LOG_SHOWN + "\n"


def test_jobs_tail_follow_strips_controls_even_when_a_sequence_is_cut_between_reads(mgr):
    import threading

    from learngene.text import printable

    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0", "--sleep", "60"]))
    log = mgr.runs_dir / run_id / "log.txt"
    wait_until(lambda: log.exists() and b"record 1/1" in log.read_bytes(), what="the worker's record")  # then quiet
    env = {**os.environ, "LEARNGENE_RUNS_DIR": str(mgr.runs_dir)}
    follow = subprocess.Popen([sys.executable, "-m", "learngene", "jobs", "tail", run_id, "-n", "1", "--follow"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown: list[str] = []  # the follower's output so far: each wait below is for what it has printed

    def read() -> None:
        for line in follow.stdout:
            shown.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with open(log, "ab") as f:
            def append(data: bytes) -> bool:
                f.write(data)
                f.flush()
                return True

            def polling() -> bool:
                """Whether a line appended after the tail was printed came out (the first line shown is the
                tail; a line appended before the follower took the log's size as its start never shows)."""
                if any("ping" in line for line in shown[1:]):
                    return True
                append(b"ping\n")
                time.sleep(0.2)
                return False

            wait_until(polling, 60, "the follower to poll the log")
            append(LOG_HOSTILE.encode() + b"\x1b]0;ti")  # an OSC sequence cut between two reads
            wait_until(lambda: "next line" in "".join(shown), 30, "the follower to read the first part")
            append(b"tle\x07after the cut\n\xe4\xb8")  # the rest of it, and a UTF-8 character cut too
            wait_until(lambda: "after the cut" in "".join(shown), 30, "the follower to read the second part")
            append(b"\xad\n")
            wait_until(lambda: "\u4e2d" in "".join(shown), 30, "the follower to read the last part")
        mgr.cancel(run_id)
        follow.wait(timeout=60)
        reader.join(timeout=10)
        stdout, stderr = "".join(shown), follow.stderr.read()
    finally:
        follow.kill()
        follow.wait(timeout=10)
    assert follow.returncode == 0, stderr
    assert stdout.endswith(LOG_SHOWN + "\nafter the cut\n\u4e2d\n"), repr(stdout[-600:])
    assert not controls(stdout) and "\ufffd" not in stdout, repr(stdout[-600:])
    # In a log an unterminated escape string ends at the line break instead of swallowing the next lines.
    assert printable("a\x1b]0;oops\nb\n", keep_lines=True) == "a\nb\n"


# ------------------------------------------------------------------ 2. uploads


class Upload:
    """What `st.file_uploader` hands over: a name and the bytes."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """The app's uploads folder on tmp_path, every import stamped with the same second, and good weights."""
    from safetensors.torch import save_file

    from app.person import ancestries
    from learngene.models import create_model

    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(ancestries.time, "strftime", lambda *_: "20250101-120000")  # one second for all
    model = create_model("lg_vit_tiny", 64, img_size=32)
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return ancestries, weights.read_bytes()


def test_a_failing_upload_in_the_same_second_leaves_the_earlier_import(uploads):
    ancestries, good = uploads
    first = ancestries.import_upload([Upload("model.safetensors", good)], "lg_vit_tiny", 64, 32)
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the point is what it leaves behind
        ancestries.import_upload([Upload("model.safetensors", b"not weights")], "lg_vit_tiny", 64, 32)
    assert first.is_file(), "the failing upload deleted the earlier good import"
    second = ancestries.import_upload([Upload("model.safetensors", good)], "lg_vit_tiny", 64, 32)
    assert second.parent != first.parent and first.is_file() and second.is_file()
    assert sorted(ancestries.uploaded_ancestries()) == sorted([first, second])


def test_a_250_character_upload_name_is_shortened_with_its_suffix(uploads):
    ancestries, good = uploads
    path = ancestries.import_upload([Upload("m" * 250 + ".safetensors", good)], "lg_vit_tiny", 64, 32)
    assert path.is_file() and path.suffix == ".safetensors"
    assert len(path.name) <= 100 and len(path.parent.name) <= 120


def test_learngene_uploads_get_their_own_short_names(tmp_path, monkeypatch):
    from app.person import descendant

    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(time, "strftime", lambda *_: "20250101-120000")
    for name in ("lg.safetensors", "x" * 250 + ".safetensors"):
        with pytest.raises(Exception) as err:  # noqa: B017 - garbage is refused, but not for its name
            descendant.import_learngene(name, b"garbage", anc=None)
        assert "File name too long" not in str(err.value)
    (earlier,) = (tmp_path / "runs" / ".uploads").glob("*/learngenes")  # the uploading person's own folder
    assert list(earlier.iterdir()) == []  # each failing upload removed only its own file
    assert len(descendant._safe_name("y" * 250 + ".safetensors")) <= 100
    assert descendant._safe_name("y" * 250 + ".safetensors").endswith(".safetensors")
