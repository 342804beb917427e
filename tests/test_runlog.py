"""Run-folder primitives: atomic JSON, append-only JSON lines, incremental reads."""

import json
import math

from learngene.reporting import Reporter
from learngene.runlog import JsonlWriter, atomic_write_json, read_json, read_jsonl


def test_atomic_write_json_replaces_and_maps_nonfinite(tmp_path):
    p = tmp_path / "s.json"
    atomic_write_json(p, {"a": 1, "loss": float("nan"), "inf": math.inf})
    atomic_write_json(p, {"a": 2, "loss": 0.5})
    assert read_json(p) == {"a": 2, "loss": 0.5}
    atomic_write_json(p, {"x": float("nan")})
    assert read_json(p) == {"x": None}
    assert [f.name for f in tmp_path.iterdir()] == ["s.json"], "no temporary files left behind"
    assert read_json(tmp_path / "missing.json", default={}) == {}


def test_jsonl_incremental_reads_skip_a_truncated_tail(tmp_path):
    p = tmp_path / "m.jsonl"
    with JsonlWriter(p) as w:
        w.write({"epoch": 1})
        w.write({"epoch": 2})
    recs, off = read_jsonl(p)
    assert [r["epoch"] for r in recs] == [1, 2]
    with open(p, "a") as f:
        f.write('{"epoch": 3')  # a writer killed mid-record
    recs, off2 = read_jsonl(p, off)
    assert recs == [] and off2 == off
    with open(p, "a") as f:
        f.write(', "x": 1}\nnot json\n{"epoch": 4}\n')
    recs, off3 = read_jsonl(p, off2)
    assert [r["epoch"] for r in recs] == [3, 4]
    assert off3 == p.stat().st_size
    assert read_jsonl(tmp_path / "none.jsonl", 7) == ([], 7)


def test_reporter_writes_metrics_and_progress_only_in_a_run(tmp_path, monkeypatch):
    monkeypatch.delenv("LEARNGENE_RUN_DIR", raising=False)
    with Reporter(None, total=2, quiet=True) as rep:
        rep.metric({"a": 1})
        assert rep.outputs_dir is None
    run = tmp_path / "run"
    with Reporter(run, total=2, desc="x", quiet=True) as rep:
        rep.metric({"kind": "epoch", "loss": 1.0})
        rep.advance(2, message="done")
        assert rep.outputs_dir == run / "outputs" and rep.outputs_dir.is_dir()
    recs, _ = read_jsonl(run / "metrics.jsonl")
    assert recs[0]["kind"] == "epoch" and "t" in recs[0]
    prog = json.loads((run / "progress.json").read_text())
    assert prog["done"] == 2 and prog["total"] == 2 and prog["message"] == "done"
