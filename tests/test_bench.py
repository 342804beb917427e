"""Smoke tests of the benchmarks in `bench/`: each runs end to end with its smallest settings.

They check that every benchmark prints its table, writes its raw CSV and its markdown section, and
that the docs section logic replaces only its own section. Timings are not checked (the machine may
be loaded); agreement checks inside the benchmarks are (their exit status).
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from bench import _common, advantages, cka_speed, docs, memory, sweep_speed, throughput


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_ancestry(tmp_path_factory) -> Path:
    """An untrained 3-block lg_vit_tiny with a model card (enough layers for the heur preset)."""
    from learngene.data.shapes import default_split
    from learngene.models import ModelCard, create_model, save_checkpoint

    model = create_model("lg_vit_tiny", num_classes=64, depth=3)
    card = ModelCard(spec=model.lg_spec, dataset="shapes", split=default_split().to_dict(), epochs=0,
                     base_accuracy=0.0, command="tests/test_bench.py (untrained)")
    return Path(save_checkpoint(model, tmp_path_factory.mktemp("anc") / "anc.safetensors", card))


def _common_args(tmp_path: Path) -> list[str]:
    return ["--quick", "--device", "cpu", "--out", str(tmp_path / "out"), "--write-docs", "--docs",
            str(tmp_path / "results.md")]


def test_throughput_smallest(tmp_path, capsys):
    assert throughput.main([*_common_args(tmp_path), "--steps", "2", "--batch", "4", "--epochs", "2"]) == 0
    rows = _rows(tmp_path / "out" / "throughput-cpu.csv")
    assert {r["loop"] for r in rows} == {"plain", "project"}
    assert all(float(r["img_per_s"]) > 0 for r in rows)
    text = (tmp_path / "results.md").read_text()
    assert "<!-- bench:throughput-cpu -->" in text and "python -m bench.throughput" in text


def test_sweep_speed_smallest_agrees(tmp_path):
    assert sweep_speed.main([*_common_args(tmp_path), "--epochs", "1", "--models", "2", "--test-per-class", "5"]) == 0
    (row,) = _rows(tmp_path / "out" / "sweep-cpu.csv")
    assert row["agree"] == "True"
    assert float(row["speedup"]) > 0


def test_cka_speed_smallest_agrees(tmp_path):
    assert cka_speed.main([*_common_args(tmp_path), "--depth", "2", "--images", "32", "--batch", "16"]) == 0
    rows = _rows(tmp_path / "out" / "cka-cpu.csv")
    assert float(rows[0]["max_abs_diff"]) < 1e-8


def test_naive_hsic_matches_library():
    import torch

    from learngene.condense.cka import unbiased_hsic

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 5, generator=gen, dtype=torch.float64), torch.randn(12, 3, generator=gen, dtype=torch.float64)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert torch.allclose(cka_speed._hsic_naive(k, l), unbiased_hsic(k, l), atol=1e-12)


def test_advantages_smallest(tmp_path, tiny_ancestry):
    argv = [*_common_args(tmp_path), "--ancestry", str(tiny_ancestry), "--models", "heur,finetune", "--tasks", "2",
            "--epochs", "2", "--shots", "1,2", "--lrs", "1e-3,3e-3", "--wds", "0.05", "--test-per-class", "4",
            "--batched", "on"]
    assert advantages.main(argv) == 0
    rows = _rows(tmp_path / "out" / "advantages.csv")
    # 3 models x 2 tasks x (main cell + 1 grid cell + 1 other K)
    assert len(rows) == 3 * 2 * 3
    assert {r["model"] for r in rows} == {"baseline", "heur", "finetune"}
    assert {r["timing"].split()[0] for r in rows} <= {"sequential", "batched"}
    assert any(r["epochs_to_target"] for r in rows)
    text = (tmp_path / "results.md").read_text()
    assert "<!-- bench:advantages -->" in text and "| heur | 0,1,2 |" in text
    assert len(list((tmp_path / "out" / "figures").glob("*.svg"))) == 3


def test_advantages_resumes_from_its_journal(tmp_path, tiny_ancestry, capsys):
    argv = [*_common_args(tmp_path), "--ancestry", str(tiny_ancestry), "--models", "heur", "--tasks", "2",
            "--epochs", "2", "--shots", "1,2", "--lrs", "1e-3", "--wds", "0.05", "--test-per-class", "4",
            "--batched", "off"]
    assert advantages.main(argv) == 0
    first = _rows(tmp_path / "out" / "advantages.csv")
    (journal,) = (tmp_path / "out" / "journal").glob("*.jsonl")
    lines = journal.read_text().splitlines()
    assert len(lines) == len(first) == 2 * 2 * 2
    journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # killed half-way through a line
    capsys.readouterr()
    assert advantages.main(argv) == 0
    assert "3/8 runs restored from the journal" in capsys.readouterr().out
    again = _rows(tmp_path / "out" / "advantages.csv")
    key = lambda r: (r["model"], r["task"], r["k_shot"], r["lr"])  # noqa: E731
    assert [(key(r), r["final_acc"]) for r in sorted(first, key=key)] == \
        [(key(r), r["final_acc"]) for r in sorted(again, key=key)]  # same seeds: retrained runs agree
    # rows outside --grid-models are trained in the main cell only; the main cell comes from the journal
    capsys.readouterr()
    assert advantages.main([*argv, "--models", "heur,finetune", "--grid-models", "finetune"]) == 0
    printed = capsys.readouterr().out
    assert "6/10 runs restored" in printed and "Rows heur were trained in the main cell only" in printed
    rows = _rows(tmp_path / "out" / "advantages.csv")
    assert sorted((r["model"], r["k_shot"]) for r in rows if r["model"] == "heur") == [("heur", "2"), ("heur", "2")]
    assert "| heur | 0,1,2 |" in printed and "| n/a | n/a |" in printed
    # a different recipe does not reuse the journal
    assert advantages.main([*argv[:-2], "--batched", "off", "--epochs", "3"]) == 0
    assert "restored" not in capsys.readouterr().out


def test_study_defaults_satisfy_the_issue():
    from learngene.descend.advantages import Study

    s = Study()
    assert s.tasks >= 10 and len(s.lrs) >= 4 and len(s.wds) >= 2 and set(s.shots) == {1, 5, 10, 20}
    assert (s.lr, s.weight_decay) in [(a, b) for a in s.lrs for b in s.wds] and s.k_shot == 10
    assert {"baseline", "heur", "auto-paper", "auto", "cka", "finetune"} <= set(s.models)


def test_memory_peak_of_a_child_process():
    proc = subprocess.Popen([sys.executable, "-c", "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    code, peak = memory.reap(proc)
    assert code == 0 and peak >= 64


def test_docs_sections_replace_only_their_own(tmp_path):
    path = tmp_path / "results.md"
    info = {"device": "cpu", "cores": 2, "cpu": "x", "threads": 1, "torch": "t", "date": "d"}
    _common.insert_section(path, "cka-cpu", _common.section("cka-cpu", "CKA", "BODY-1", "cmd", info))
    _common.insert_section(path, "advantages", _common.section("advantages", "Adv", "BODY-2", "cmd", info))
    _common.insert_section(path, "cka-cpu", _common.section("cka-cpu", "CKA", "BODY-3", "cmd", info))
    text = path.read_text()
    assert text.index("bench:advantages") < text.index("bench:cka-cpu")  # SECTION_ORDER
    assert "BODY-3" in text and "BODY-1" not in text and text.count("<!-- bench:cka-cpu -->") == 1
    other = tmp_path / "gpu.md"
    other.write_text(_common.section("cka-cuda", "CKA GPU", "BODY-4", "cmd", {**info, "device": "cuda"}))
    assert docs.main([str(other), "--docs", str(path)]) == 0
    assert "BODY-4" in path.read_text() and "BODY-3" in path.read_text()


def test_the_data_regime_crossover_is_where_the_gain_stays_gone():
    from bench.data_regime import crossover

    def cells(*lows):
        return {k: {"gain": {"lo": low, "mean": low + 0.1}} for k, low in zip((1, 5, 10, 20, 50), lows, strict=False)}

    assert crossover(cells(0.05, -0.1, 0.2, 0.3)) == ("none up to K = 20: the gain is clearly positive there; "
                                                      "not clear at K = 5, where the gain's interval reaches 0")
    assert crossover(cells(0.05, 0.1, -0.1, -0.2)).startswith("K = 10")
    assert crossover(cells(-0.1, 0.1, 0.2)) == "none up to K = 10: the gain is clearly positive there"
    assert crossover(cells(-0.1, -0.2)) == "no gain at any K measured"
