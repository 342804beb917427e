"""The registry on the shipped ancestries and a real descendant run: `learngene registry list|show|lineage`,
and the Lineage page (AppTest)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from learngene.cli import main

ROOT = Path(__file__).resolve().parents[1]
LEARNGENE = ROOT / "assets" / "learngenes" / "lg_vit_tiny-cka.safetensors"
STEMS = ("lg_vit_tiny", "lg_resnet_mini")


TINY = ["--epochs", "1", "--k-shot", "2", "--test-per-class", "4", "--images-per-class", "30", "--threads", "1"]


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory) -> tuple[Path, str, str, str]:
    """Real (tiny) jobs: an `inherit` of the shipped CKA layers, and two `train` runs: one from the shipped CKA
    learngene whose weights were not saved, one from the inherit run's learngene started in the runs folder's
    parent with `--save-models models` (a relative path, as a person types it)."""
    from learngene.jobs import JobManager, JobSpec

    base = tmp_path_factory.mktemp("registry")
    runs = base / "runs"
    mgr = JobManager(runs, max_cpu_jobs=2)
    made = mgr.start(JobSpec(argv=["inherit", "--ancestry", str(ROOT / "assets" / "lg_vit_tiny.safetensors"),
                                   "--similarity", str(ROOT / "assets" / "similarity" / "lg_vit_tiny-cka.json")]))
    plain = mgr.start(JobSpec(argv=["train", "--learngene", str(LEARNGENE), "--tasks", "2", *TINY],
                              name="tiny descendant"))
    assert mgr.wait(made, timeout=300).state == "done", mgr.log_tail(made)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        saving = mgr.start(JobSpec(argv=["train", "--learngene", f"runs/{made}/outputs/learngene.safetensors",
                                          "--tasks", "1", *TINY, "--save-models", "models"], name="saved descendant"))
    finally:
        os.chdir(cwd)
    for run_id in (plain, saving):
        assert mgr.wait(run_id, timeout=300).state == "done", mgr.log_tail(run_id)
    return runs, plain, saving, made


@pytest.fixture
def train_run(train_runs) -> tuple[Path, str]:
    return train_runs[0], train_runs[1]


@pytest.fixture
def runs(tmp_path, train_run, monkeypatch) -> tuple[Path, str]:
    """A copy of the finished run's folder as this test's runs folder."""
    src, run_id = train_run
    folder = tmp_path / "runs"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns(".*"))
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(folder))
    monkeypatch.delenv("LEARNGENE_ASSETS_DIR", raising=False)
    monkeypatch.delenv("LEARNGENE_ANCESTRY", raising=False)
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "cache"))  # no imports
    return folder, run_id


def _json(capsys, *argv: str):
    assert main(["registry", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_has_the_shipped_lineage(runs, capsys):
    nodes = {n["id"]: n for n in _json(capsys, "list")}
    for stem in STEMS:
        anc = nodes[f"ancestry:{stem}"]
        card = json.loads((ROOT / "assets" / f"{stem}.json").read_text())
        assert anc["sha256"] == card["sha256"] and anc["parents"] == []
        assert nodes[f"condense:{stem}-cka"]["parents"] == [f"ancestry:{stem}", f"pseudo:{stem}"]
        assert nodes[f"learngene:{stem}-cka"]["parents"] == [f"ancestry:{stem}", f"condense:{stem}-cka"]
        assert nodes[f"probe:{stem}"]["parents"] == [f"ancestry:{stem}"]
        demo = nodes[f"demo:{stem}"]
        assert demo["kind"] == "descendant" and demo["results"]["gain"]["n"] == 5
    from learngene.registry import file_sha256

    assert nodes["learngene:lg_vit_tiny-cka"]["sha256"] == file_sha256(LEARNGENE)
    assert main(["registry", "list", "--kind", "learngene"]) == 0
    table = capsys.readouterr().out
    assert "learngene:lg_resnet_mini-cka" in table and "ancestry:lg_vit_tiny " not in table


def test_a_run_without_weights_is_a_node(runs, capsys):
    folder, run_id = runs
    node = _json(capsys, "show", f"run:{run_id}")
    assert node["kind"] == "descendant" and node["run_id"] == run_id
    assert node["parents"] == ["learngene:lg_vit_tiny-cka"]
    from learngene.registry import file_sha256

    assert node["sha256"] == file_sha256(folder / run_id / "config.json")
    summary = json.loads((folder / run_id / "outputs" / "summary.json").read_text())["summary"]
    assert node["results"]["gain"]["mean"] == pytest.approx(summary["gain"]["mean"])
    assert node["info"]["tasks"]["k_shot"] == 2 and node["info"]["layers"] == [0, 1, 2, 3]
    assert f"run:{run_id}" in _json(capsys, "show", "learngene:lg_vit_tiny-cka")["children"]
    assert main(["registry", "show", run_id[:15] + "x"]) == 2  # an unknown id: a usage error, one line
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_runs_chain_and_saved_models_are_children_of_their_run(train_runs, monkeypatch, capsys):
    from learngene.registry import file_sha256

    runs, _, saving, made = train_runs
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(runs))
    learngene = _json(capsys, "show", f"run:{made}")
    assert learngene["kind"] == "learngene" and learngene["info"]["layers"] == [0, 1, 2, 3]
    assert learngene["sha256"] == file_sha256(runs / made / "outputs" / "learngene.safetensors")
    assert learngene["parents"] == ["ancestry:lg_vit_tiny", "condense:lg_vit_tiny-cka"]
    assert learngene["children"] == [f"run:{saving}"]
    out = runs.parent / "hub"
    assert main(["hub", "export", f"run:{made}", str(out)]) == 0  # a run's learngene is exported by its id
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "learngene" and config["sha256"] == learngene["sha256"]
    assert [r["id"] for r in config["lineage"]] == ["ancestry:lg_vit_tiny", "condense:lg_vit_tiny-cka",
                                                    "pseudo:lg_vit_tiny"]
    capsys.readouterr()
    node = _json(capsys, "show", f"run:{saving}")
    kids = {c: _json(capsys, "show", c) for c in node["children"]}
    assert set(kids) == {f"model:{saving}/task0-learngene", f"model:{saving}/task0-baseline"}
    for kid in kids.values():
        card = json.loads((runs.parent / "models" / f"{kid['name']}.json").read_text())
        assert kid["kind"] == "descendant" and kid["sha256"] == card["sha256"] and kid["parents"] == [f"run:{saving}"]


@pytest.mark.parametrize("person", ["", "a1b2c3/"])
def test_uploads_are_nodes(runs, capsys, person):
    folder, _ = runs
    up = folder / ".uploads" / person
    (up / "learngenes").mkdir(parents=True)
    shutil.copyfile(LEARNGENE, up / "learngenes" / "mine.safetensors")
    (up / "20261206-120000-abcdef-resnet").mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copyfile((ROOT / "assets" / "lg_resnet_mini").with_suffix(suffix),
                        up / "20261206-120000-abcdef-resnet" / f"resnet{suffix}")
    nodes = {n["id"]: n for n in _json(capsys, "list")}
    lg = nodes[f"upload:{person}learngenes/mine"]
    assert lg["kind"] == "learngene" and lg["parents"] == ["ancestry:lg_vit_tiny"]
    anc = nodes[f"upload:{person}20261206-120000-abcdef-resnet"]
    assert anc["kind"] == "ancestry" and anc["sha256"] == nodes["ancestry:lg_resnet_mini"]["sha256"]


def test_lineage_both_ways(runs, capsys):
    _, run_id = runs
    chain = _json(capsys, "lineage", f"run:{run_id}")
    assert [(c["depth"], c["id"]) for c in chain] == [
        (0, f"run:{run_id}"), (1, "learngene:lg_vit_tiny-cka"), (2, "ancestry:lg_vit_tiny"),
        (2, "condense:lg_vit_tiny-cka"), (3, "pseudo:lg_vit_tiny")]
    tree = _json(capsys, "lineage", "ancestry:lg_vit_tiny", "--descendants")
    ids = [c["id"] for c in tree]
    assert ids[0] == "ancestry:lg_vit_tiny" and f"run:{run_id}" in ids and "demo:lg_vit_tiny" in ids
    assert not any("resnet" in i for i in ids)
    sha = json.loads((ROOT / "assets" / "lg_vit_tiny.json").read_text())["sha256"]
    assert main(["registry", "lineage", sha[:10]]) == 0  # a hash prefix names the node
    assert capsys.readouterr().out.startswith("ancestry:lg_vit_tiny")


# ------------------------------------------------------------------ the Lineage page


def _page() -> str:
    """The page run as the router runs it (the repository first on the path, not pages/)."""
    return (f"import runpy, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
            f"runpy.run_path({str(ROOT / 'pages' / 'lineage.py')!r}, run_name='__main__')\n")


def test_lineage_page_draws_the_tree_with_links(runs):
    from tests.conftest import require_module

    require_module("streamlit")
    from streamlit.testing.v1 import AppTest

    folder, run_id = runs
    (folder / ".uploads" / "p1" / "learngenes").mkdir(parents=True)  # someone's upload: not on the page
    shutil.copyfile(LEARNGENE, folder / ".uploads" / "p1" / "learngenes" / "someones.safetensors")
    at = AppTest.from_string(_page(), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(m.value for m in at.markdown)
    assert f"(/runs?runs={run_id})" in text  # the run opens on the Runs page
    assert "[lg_vit_tiny-cka](/learngene)" in text and "[lg_vit_tiny-cka](/similarity)" in text
    assert "[demo lg_vit_tiny](/)" in text and "gain +31.4 ± 20.3 points over 5 tasks" in text
    assert "resnet" not in text and "someones" not in text
    assert any(run_id in str(df.value) for df in at.dataframe)
    at = AppTest.from_string(_page(), default_timeout=90)
    at.query_params["ancestry"] = str(ROOT / "assets" / "lg_resnet_mini.safetensors")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = "\n".join(m.value for m in at.markdown)
    assert "[lg_resnet_mini-cka](/learngene)" in text and run_id not in text
