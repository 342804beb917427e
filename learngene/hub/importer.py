"""`learngene hub import`: read a Hub folder with the checks an upload gets, and keep its lineage.

Checks, in order: config.json is the studio's (format, kind, a `.safetensors` weights name: no pickle),
it records a SHA-256 (missing or empty: refused), the README's metadata records the same hash, the
weights have that hash, the split record is well formed, and the weights load into the recorded
architecture (an ancestry strictly through `load_checkpoint`; a learngene through `load_learngene`,
then every tensor's shape against the same layer of the architecture its metadata names). Only then is
the copy moved into `$LEARNGENE_CACHE/imports/<kind>-<hash>/` and listed in the imports index.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from learngene.errors import CheckpointError, ConfigError
from learngene.hub import _card
from learngene.hub._format import CONFIG, README, check_config, check_split, read_small_json, slug
from learngene.registry import file_sha256, imports_dir, record_import


def read_folder(folder: Path, what: str) -> dict[str, Any]:
    """config.json of a Hub folder, checked against the weights and the README (no weights are loaded)."""
    if not folder.is_dir():
        raise CheckpointError(f"{what} is not a folder")
    config = read_small_json(folder / CONFIG, what)
    check_config(config, what)
    sha = config["sha256"]
    if _card.card_sha256(folder / README, what) != sha:
        raise CheckpointError(f"{what}: README.md and config.json record different SHA-256s; one of them was "
                              "edited after export. Refused")
    weights = folder / config["weights"]
    if not weights.is_file():
        raise CheckpointError(f"{what}: the weights {config['weights']} are missing")
    if file_sha256(weights) != sha:
        raise CheckpointError(f"{what}: {config['weights']} does not match the SHA-256 its card records; the "
                              "weights or the card were changed after export. Refused")
    check_split(config.get("split"), what)
    return config


def _check_ancestry(config: dict[str, Any], path: Path, what: str) -> None:
    from learngene.models import ModelCard, load_checkpoint
    from learngene.runlog import atomic_write_json

    card = config.get("card")
    try:
        parsed = ModelCard.from_dict(card)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{what}: config.json's model card is invalid: {exc}") from None
    if parsed.sha256 != config["sha256"]:
        raise CheckpointError(f"{what}: the model card's sha256 differs from config.json's; refused")
    check_split(parsed.split, what)
    atomic_write_json(path.with_suffix(".json"), card)
    load_checkpoint(path)  # the hash again, then a strict load into the architecture the card names


def _check_learngene(config: dict[str, Any], path: Path, what: str) -> None:
    from learngene.inherit.learngene_file import load_learngene, stem_state
    from learngene.models import create_from_spec, layer_view

    lg = load_learngene(path)
    said = config.get("learngene") or {}
    if list(said.get("layers") or []) != list(lg.layers) or said.get("spec") != lg.spec.to_dict():
        raise CheckpointError(f"{what}: config.json's layers or architecture differ from the learngene file's")
    check_split(lg.extra.get("split"), what)
    try:
        model = create_from_spec(lg.spec)
    except ConfigError as exc:
        raise CheckpointError(f"{what}: the learngene names an unbuildable architecture: {exc}") from None
    view = layer_view(model)
    if lg.n_layers != len(view) or any(not 0 <= i < len(view) for i in lg.layers):
        raise CheckpointError(f"{what}: the learngene's layers do not exist in {lg.spec.arch} ({len(view)} layers)")
    want = {f"layers/{i}/{k}": tuple(v.shape) for i in lg.layers for k, v in view.get(i).state_dict().items()}
    for name, s in stem_state(model).items():
        want.update({f"stem/{name}/{k}": tuple(v.shape) for k, v in s.items()} if isinstance(s, dict)
                    else {f"stem/{name}": tuple(s.shape)})
    have = {k: tuple(v.shape) for k, v in lg.tensors().items()}
    bad = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if bad:
        k = bad[0]
        raise CheckpointError(f"{what}: {len(bad)} tensor(s) do not fit {lg.spec.arch}, e.g. {k}: file "
                              f"{have.get(k, 'missing')} vs architecture {want.get(k, 'none')}; refused")


def import_folder(folder: str | Path, source: str = "", expect: str | None = None) -> dict[str, Any]:
    """Check a Hub folder and copy it into the imports; returns its index entry (with `path`)."""
    folder = Path(folder)
    what = source or str(folder)
    config = read_folder(folder, what)
    if expect and config["kind"] != expect:
        raise ConfigError(f"{what} holds {'an' if config['kind'] == 'ancestry' else 'a'} {config['kind']}; pass it "
                          f"with --{config['kind']}, not --{expect}")
    root = imports_dir()
    final = root / f"{config['kind']}-{config['sha256'][:16]}"
    name = slug(config.get("name") or "model")
    path = final / f"{name}.safetensors"
    from learngene.jobs.slots import flocked

    with flocked(root / ".import.lock"):  # two imports of the same files: one copies, the other finds it
        if not (path.is_file() and file_sha256(path) == config["sha256"]):
            _materialize(folder, config, root, final, name, what)
    entry = {"id": f"import:{name}-{config['sha256'][:8]}", "kind": config["kind"], "name": name,
             "sha256": config["sha256"], "path": str(path), "source": source or str(folder.resolve()),
             "parents": config.get("parents") or [], "lineage": config.get("lineage") or [],
             "results": {k: v for k, v in (config.get("results") or {}).items() if k != "descendant_runs"},
             "info": {"arch": ((config.get("card") or config.get("learngene") or {}).get("spec") or {}).get("arch"),
                      "layers": (config.get("learngene") or {}).get("layers"),
                      "method": (config.get("learngene") or {}).get("method")}}
    record_import(entry)
    return entry


def _materialize(folder: Path, config: dict[str, Any], root: Path, final: Path, name: str, what: str) -> None:
    """Copy, check, then move into place (a failed check leaves nothing behind)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        path = tmp / f"{name}.safetensors"
        shutil.copyfile(folder / config["weights"], path)
        if file_sha256(path) != config["sha256"]:  # changed while being copied
            raise CheckpointError(f"{what}: the weights changed while they were copied; try again")
        for extra in (CONFIG, README):
            shutil.copyfile(folder / extra, tmp / extra)
        (_check_ancestry if config["kind"] == "ancestry" else _check_learngene)(config, path, what)
        shutil.rmtree(final, ignore_errors=True)  # an earlier copy that no longer matches
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
