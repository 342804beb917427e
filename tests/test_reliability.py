"""The fault-probe script `bench/reliability.py` keeps working: a few of its cheapest probes, and its report."""

from __future__ import annotations

from bench import reliability

CHEAP = ("run-id-dotdot", "run-id-newline", "runs-dir-file")


def test_cheap_probes_run_and_are_good(tmp_path):
    probes = [p for p in reliability.PROBES if p.key in CHEAP]
    assert [p.key for p in probes] == ["runs-dir-file", "run-id-newline", "run-id-dotdot"]
    lines = []
    results = reliability.run_probes(probes, root=tmp_path, log=lines.append)
    assert len(results) == len(lines) == 3
    for probe, outcome, _secs in results:
        assert outcome.good, (probe.key, outcome.observed)
        assert outcome.observed.startswith("exit 2: error: ") and str(tmp_path) not in outcome.observed
    text = reliability.report(results, "cpu; test machine", 1.0)
    assert "**3 good, 0 bad, 3 probes.**" in text and "Machine: cpu; test machine" in text
    assert text.count("| good |") == 3


def test_a_bad_outcome_is_reported_bad(tmp_path):
    def broken(ctx):
        raise RuntimeError("boom")

    probe = reliability.Probe("broken", "raises", "nothing", broken)
    [(_, outcome, _)] = reliability.run_probes([probe], root=tmp_path, log=lambda _: None)
    assert not outcome.good and "probe failed: RuntimeError: boom" in outcome.observed
    assert "**0 good, 1 bad, 1 probes.**" in reliability.report([(probe, outcome, 0.0)], "m", 0.0)


def test_probe_keys_are_unique():
    keys = [p.key for p in reliability.PROBES]
    assert len(keys) == len(set(keys)) >= 21
