"""The Hub format both ways: export, import with its checks, hf-hub: from the cache, and the round trip
shipped ancestry -> condense -> inherit -> export -> import in a fresh cache -> train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from learngene.cli import main

ROOT = Path(__file__).resolve().parents[1]
ANCESTRY = ROOT / "assets" / "lg_vit_tiny.safetensors"
SHIPPED_LG = ROOT / "assets" / "learngenes" / "lg_vit_tiny-cka.safetensors"
TRAIN = ["--tasks", "1", "--epochs", "1", "--k-shot", "2", "--test-per-class", "4", "--images-per-class", "30",
         "--threads", "1"]


def _cache_root() -> Path:
    import os

    return Path(os.environ.get("LEARNGENE_CACHE") or Path.home() / ".cache" / "learngene")


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """A fresh LEARNGENE_CACHE (imports) sharing the generated data, an empty offline Hugging Face cache."""
    import huggingface_hub.constants as hc

    data = _cache_root() / "shapes"
    data.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "lgcache"
    cache.mkdir()
    (cache / "shapes").symlink_to(data)
    hf = tmp_path / "hf"
    monkeypatch.setenv("LEARNGENE_CACHE", str(cache))
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # huggingface_hub reads its settings once, at import
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hf / "hub"))
    return tmp_path


def _export(key: str, out: Path, *extra: str) -> Path:
    assert main(["hub", "export", key, str(out), *extra]) == 0
    return out


def _into_hf_cache(folder: Path, hf_home: Path, repo: str) -> None:
    """Lay `folder` out as huggingface_hub's cache holds a downloaded repo (refs/main -> a snapshot)."""
    base = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    shutil.copytree(folder, base / "snapshots" / commit)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "task0-learngene.safetensors")


def test_round_trip_gives_the_same_descendant(hub_env, capsys):
    tmp = hub_env
    sim, lg = tmp / "sim.json", tmp / "lg.safetensors"
    assert main(["condense", "--ancestry", str(ANCESTRY), "--method", "cka", "--pd-epochs", "30", "--images", "64",
                 "--threads", "1", "--out", str(sim)]) == 0
    assert main(["inherit", "--ancestry", str(ANCESTRY), "--similarity", str(sim), "--out", str(lg)]) == 0
    hub = _export(str(lg), tmp / "hub")
    assert main(["hub", "import", str(hub)]) == 0
    assert "learngene lg" in capsys.readouterr().out
    assert main(["train", "--learngene", str(hub), *TRAIN, "--save-models", str(tmp / "a")]) == 0
    assert main(["train", "--learngene", str(lg), *TRAIN, "--save-models", str(tmp / "b")]) == 0
    _into_hf_cache(hub, tmp / "hf", "studio/lg-vit-cka")
    assert main(["train", "--learngene", "hf-hub:studio/lg-vit-cka", *TRAIN, "--save-models", str(tmp / "c")]) == 0
    a, b, c = _weights(tmp / "a"), _weights(tmp / "b"), _weights(tmp / "c")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) and torch.equal(c[k], b[k]) for k in b)
    imported = list((tmp / "lgcache" / "imports").glob("learngene-*/*.safetensors"))
    assert len(imported) == 1 and imported[0].read_bytes() == lg.read_bytes()


def test_ancestry_round_trip_and_card_metadata(hub_env, capsys):
    from huggingface_hub import ModelCard

    hub = _export("ancestry:lg_vit_tiny", hub_env / "anc", "--base-model", "someone/vit-base")
    data = ModelCard.load(hub / "README.md").data.to_dict()
    assert data["library_name"] == "learngene-studio"
    assert {"learngene", "ancestry", "lg_vit_tiny"} <= set(data["tags"])
    assert data["datasets"] == ["shapes"] and data["metrics"] == ["accuracy"]
    assert data["base_model"] == "someone/vit-base"
    assert data["learngene_sha256"] == json.loads((hub / "config.json").read_text())["sha256"]
    assert data["model-index"][0]["results"][0]["metrics"][0]["value"] == pytest.approx(0.5090625)
    text = (hub / "README.md").read_text()
    assert "Only Learngene Studio reads these files back" in text and "timm.create_model" in text
    out = hub_env / "lg.safetensors"
    assert main(["inherit", "--ancestry", str(hub), "--layers", "0,1", "--out", str(out)]) == 0
    assert "--ancestry" in capsys.readouterr().out
    from learngene.inherit.learngene_file import load_learngene

    assert load_learngene(out).ancestry_sha256 == data["learngene_sha256"]


def _tamper_weights(hub: Path) -> None:
    raw = bytearray((hub / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (hub / "model.safetensors").write_bytes(bytes(raw))


def _edit_json(hub: Path, **changes) -> None:
    config = json.loads((hub / "config.json").read_text())
    config.update(changes)
    (hub / "config.json").write_text(json.dumps(config))


def _edit_readme(hub: Path, old: str, new: str) -> None:
    (hub / "README.md").write_text((hub / "README.md").read_text().replace(old, new))


def _reseal(hub: Path) -> None:
    """Make config.json and README.md record the weights' current hash (what a careful forger would do)."""
    from learngene.registry import file_sha256

    old = json.loads((hub / "config.json").read_text())["sha256"]
    new = file_sha256(hub / "model.safetensors")
    _edit_json(hub, sha256=new)
    _edit_readme(hub, old, new)


def _resealed_learngene(hub: Path, **spec_changes) -> None:
    """Rewrite the learngene file with its metadata's spec changed, and reseal the folder."""
    from learngene.inherit.learngene_file import load_learngene, write_learngene
    from learngene.models import ModelSpec

    lg = load_learngene(hub / "model.safetensors")
    lg.spec = ModelSpec.from_dict({**lg.spec.to_dict(), **spec_changes})
    write_learngene(lg, hub / "model.safetensors")
    config = json.loads((hub / "config.json").read_text())
    _edit_json(hub, learngene={**config["learngene"], "spec": lg.spec.to_dict()})
    _reseal(hub)


CASES = {
    "weights changed": (lambda h: _tamper_weights(h), "does not match the SHA-256"),
    "card hash changed": (lambda h: _edit_readme(h, "learngene_sha256: ", "learngene_sha256: 00"), "different SHA"),
    "card hash removed": (lambda h: _edit_readme(h, "learngene_sha256: ", "other_sha256: "), "records no learngene_sha256"),
    "config hash empty": (lambda h: _edit_json(h, sha256=""), "records no sha256"),
    "config hash missing": (lambda h: _edit_json(h, sha256=None), "records no sha256"),
    "pickle weights": (lambda h: _edit_json(h, weights="pytorch_model.bin"), "pickle"),
    "weights outside": (lambda h: _edit_json(h, weights="../model.safetensors"), "in the folder itself"),
    "layers changed": (lambda h: _edit_json(h, learngene={"layers": [0, 1]}), "layers or architecture differ"),
    "split overlaps": (lambda h: _edit_json(h, split={"base": [0, 1], "open_world": [1], "novel": [2]}),
                       "split record is invalid"),
    "shapes differ": (lambda h: _resealed_learngene(h, overrides={"embed_dim": 48}), "do not fit lg_vit_tiny"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_folder_is_refused(hub_env, case, capsys):
    change, message = CASES[case]
    hub = _export(str(SHIPPED_LG), hub_env / "hub")
    change(hub)
    assert main(["hub", "import", str(hub)]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not list((hub_env / "lgcache" / "imports").glob("learngene-*")), "a refused import left files behind"


def test_hf_hub_offline_without_cache_is_one_line_naming_the_repo(hub_env, capsys):
    assert main(["train", "--learngene", "hf-hub:someone/not-cached", *TRAIN]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hf-hub:someone/not-cached" in err and "cache" in err, err
    assert main(["hub", "import", "hf-hub:../etc"]) != 0
    assert "is not a Hub repo" in capsys.readouterr().err


def test_the_wrong_kind_is_refused(hub_env, capsys):
    hub = _export(str(SHIPPED_LG), hub_env / "hub")
    assert main(["inherit", "--ancestry", str(hub), "--layers", "0", "--out", str(hub_env / "x.safetensors")]) != 0
    assert "pass it with --learngene" in capsys.readouterr().err


def test_an_import_keeps_its_lineage(hub_env, monkeypatch, capsys):
    hub = _export("learngene:lg_vit_tiny-cka", hub_env / "hub")
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(hub_env / "no-assets"))  # its ancestors are elsewhere
    assert main(["hub", "import", str(hub)]) == 0
    node_id = capsys.readouterr().out.split("registry node ")[1].split(";")[0]
    assert node_id.startswith("import:lg_vit_tiny-cka-")
    assert main(["registry", "lineage", node_id, "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain[0]["origin"] == "import" and chain[0]["kind"] == "learngene"
    kinds = {n["kind"]: n for n in chain[1:]}
    assert set(kinds) == {"ancestry", "condense", "pseudo"} and all(n["origin"] == "remote" for n in chain[1:])
    assert kinds["ancestry"]["sha256"] == json.loads(ANCESTRY.with_suffix(".json").read_text())["sha256"]


def test_push_offline_is_refused_after_writing_the_folder(hub_env, capsys):
    out = hub_env / "hub"
    assert main(["hub", "export", str(SHIPPED_LG), str(out), "--push", "someone/lg"]) == 2
    err = capsys.readouterr().err.strip()
    assert "HF_HUB_OFFLINE" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]


@pytest.mark.parametrize("change, message", [
    ({"spec": {"arch": "lg_vit_tiny", "img_size": 32, "num_classes": 64, "overrides": {"depth": 6}}}, "does not fit"),
    ({"sha256": ""}, "model card's sha256 differs"),
])
def test_an_ancestry_whose_card_was_edited_is_refused(hub_env, capsys, change, message):
    hub = _export("ancestry:lg_vit_tiny", hub_env / "anc")
    config = json.loads((hub / "config.json").read_text())
    _edit_json(hub, card={**config["card"], **change})
    assert main(["hub", "import", str(hub)]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not list((hub_env / "lgcache" / "imports").glob("ancestry-*"))
