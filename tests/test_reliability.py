"""The fault-probe runner `bench/reliability/` keeps working: every probe of its table runs here and must be
good (what docs/reliability.md publishes, re-measured), its verdicts (good / weak / bad), its report, and
docs/reliability.md generated from the full set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import reliability

CHEAP = ("runs-dir-file", "images-billion", "label-smoothing-5", "run-id-newline", "run-id-dotdot", "journal-torn",
         "journal-repair-locked")
# Behaviours that must stay good, each with its probe.
KEPT_GOOD = {
    "malicious pickle via CLI": "pickle-pth", "malicious pickle via upload": "pickle-upload",
    "truncated safetensors": "truncated-safetensors", "huge-header safetensors": "huge-header-safetensors",
    "empty safetensors": "empty-safetensors", "wrong architecture": "wrong-architecture",
    "corrupt status.json": "corrupt-status", "wrongly typed status.json": "mistyped-status",
    "hostile run ids": "hostile-run-ids", "kill -9 of worker": "kill-worker", "kill -9 of supervisor": "kill-supervisor",
    "concurrent writers to one journal": "journal-concurrent", "torn journal lines repaired": "journal-torn",
    "XSRF on": "xsrf-on", "loopback only": "loopback-only",
}


@pytest.fixture(scope="module")
def every_probe(tmp_path_factory) -> tuple[list, list[str], Path]:
    """Every probe of the table, run once here as `python -m bench.reliability` runs them (about a minute on
    the 2-core machine): (results, the lines it logged, its temporary root)."""
    root = tmp_path_factory.mktemp("probes")
    lines: list[str] = []
    return reliability.run_probes(list(reliability.PROBES), root=root, log=lines.append), lines, root


def test_every_probe_runs_and_is_good(every_probe):
    """The verdicts docs/reliability.md publishes, re-measured: every probe is good on this machine."""
    results, lines, root = every_probe
    assert [p.key for p, _, _ in results] == [p.key for p in reliability.PROBES] and len(lines) == len(results)
    bad = [(p.key, o.verdict, o.observed) for p, o, _ in results if not (o.good and o.verdict == "good")]
    assert not bad, bad
    assert not [p.key for p, o, _ in results if str(root) in o.observed]  # observed text names no temp path


def test_the_report_of_the_cheap_probes(every_probe):
    results = [r for r in every_probe[0] if r[0].key in CHEAP]
    assert len(results) == len(CHEAP)
    cli = [o.observed for p, o, _ in results if not p.key.startswith("journal")]
    assert all(text.startswith(("exit 2: error: ", "exit 1: error: ")) for text in cli), cli
    text = reliability.report(results, "cpu; test machine", 1.0)
    assert f"**{len(CHEAP)} good, 0 weak, 0 bad, {len(CHEAP)} probes**" in text and "Machine: cpu; test machine" in text
    assert sum(line.endswith("| good |") for line in text.splitlines()) == len(CHEAP)


def test_a_job_whose_supervisor_is_killed_is_left_to_cancel(every_probe):
    [outcome] = [o for p, o, _ in every_probe[0] if p.key == "kill-supervisor"]
    assert outcome.good, outcome.observed
    assert "the readers left the worker alone" in outcome.observed and "`jobs cancel` stopped it" in outcome.observed


def test_verdicts_bad_and_weak(tmp_path):
    def broken(ctx):
        raise RuntimeError("boom")

    probe = reliability.Probe("broken", "sizes", "raises", "nothing", broken)
    [(_, outcome, _)] = reliability.run_probes([probe], root=tmp_path, log=lambda _: None)
    assert outcome.verdict == "bad" and "probe failed: RuntimeError: boom" in outcome.observed
    assert "**0 good, 0 weak, 1 bad, 1 probes**" in reliability.report([(probe, outcome, 0.0)], "m", 0.0)

    def proc(code: int, err: str) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], code, "", err)

    judge = reliability.one_line_error
    assert judge(proc(2, "error: --epochs must be ..."), 2, "--epochs").verdict == "good"
    # a clean one-line error that does not name the option typed, or keeps what it must not, is weak
    assert judge(proc(2, "error: epochs must be ..."), 2, "--epochs").verdict == "weak"
    assert judge(proc(1, "error: refused; set weights_only=False"), 1, "refused", absent=("weights_only",)).verdict \
        == "weak"
    # a traceback, a wrong exit code or two error lines are bad whatever the wording
    assert judge(proc(1, "Traceback (most recent call last):\nerror: --epochs"), 1, "--epochs").verdict == "bad"
    assert judge(proc(1, "error: --epochs must be ..."), 2, "--epochs").verdict == "bad"
    assert judge(proc(2, "error: a\nerror: b"), 2).verdict == "bad"
    assert reliability._judged([(True, "a")], [(False, "b")]).verdict == "weak"
    assert reliability._judged([(False, "a")], [(True, "b")]).verdict == "bad"


def test_quick_cli_counts_an_escaping_exception_as_a_traceback(tmp_path, monkeypatch):
    import learngene.cli

    def crash(argv):
        raise ValueError("unexpected")

    monkeypatch.setattr(learngene.cli, "main", crash)  # stands in for a command that crashes
    proc = reliability.Ctx(tmp_path).quick_cli("train")
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert reliability.one_line_error(proc, 1).verdict == "bad"


def test_the_probes_cover_every_area_and_keep_the_good_behaviours():
    keys = [p.key for p in reliability.PROBES]
    assert len(keys) == len(set(keys)) >= 80
    assert {p.area for p in reliability.PROBES} == set(reliability.AREAS)
    assert set(KEPT_GOOD.values()) <= set(keys), set(KEPT_GOOD.values()) - set(keys)
    assert not any(part.split()[0] in ("bad", "weak", "issue") for p in reliability.PROBES for part in [p.area])


def test_the_doc_is_generated_from_every_probe_with_nothing_weak_or_bad():
    text = reliability.DOC.read_text()
    n = len(reliability.PROBES)
    assert f"**{n} good, 0 weak, 0 bad, {n} probes**" in text and text.startswith(f"# Reliability\n\n{n} probes")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [p.key for p in reliability.PROBES]
    assert all(row.endswith("| good |") for row in rows)
