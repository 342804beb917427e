"""The README.md model card of a Hub folder: `huggingface_hub` metadata plus a readable account."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from learngene.errors import CheckpointError
from learngene.hub._format import MAX_CONFIG, WEIGHTS
from learngene.runlog import FILE_MODE

LIBRARY = "learngene-studio"
SHA_KEY = "learngene_sha256"
HUB_DATASETS = {"cifar100": "uoft-cs/cifar100"}  # data sets the studio reads that live on the Hub


def hub_base_model(reg, node) -> str | None:
    """The Hub repo of the nearest ancestor that was imported from the Hub (None when none was)."""
    for _, n in reg.lineage(node.id)[1:]:
        source = str(n.info.get("source") or "")
        if n.origin == "import" and source.startswith("hf-hub:"):
            return source.removeprefix("hf-hub:").split("@")[0]
    return None


def _arch(config: dict[str, Any]) -> str:
    spec = (config.get("card") or {}).get("spec") or (config.get("learngene") or {}).get("spec") or {}
    return str(spec.get("arch") or "")


def _pct(x: Any) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) else "n/a"


def metadata(config: dict[str, Any], base_model: str | None):
    """The card's YAML metadata, built by `huggingface_hub.ModelCardData`."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = str((config.get("split") or {}).get("dataset") or (config.get("card") or {}).get("dataset") or "")
    arch, kind = _arch(config), config["kind"]
    evals = []
    acc = (config.get("card") or {}).get("base_accuracy")
    if isinstance(acc, (int, float)) and dataset:
        evals.append(EvalResult(task_type="image-classification", dataset_type=HUB_DATASETS.get(dataset, dataset),
                                dataset_name=f"{dataset} (held-out images of the base classes)",
                                metric_type="accuracy", metric_value=float(acc)))
    tags = ["learngene", LIBRARY, kind, *([arch] if arch else [])]
    method = (config.get("learngene") or {}).get("method")
    if method:
        tags.append(f"condensed-by-{method}")
    return ModelCardData(
        library_name=LIBRARY, tags=tags, datasets=[HUB_DATASETS.get(dataset, dataset)] if dataset else None,
        metrics=["accuracy"], base_model=base_model or None, model_name=config["name"],
        pipeline_tag="image-classification", eval_results=evals or None,
        **{SHA_KEY: config["sha256"], "learngene_kind": kind, "learngene_format": config["format"]})


def _lineage_lines(config: dict[str, Any]) -> list[str]:
    lines = [f"- **{r['kind']}** `{r['name']}` (sha256 `{r['sha256'][:12]}`)" for r in config.get("lineage") or []]
    return lines or ["- (no recorded ancestors)"]


def _split_lines(split: dict[str, Any]) -> list[str]:
    if not split.get("base"):
        return ["No class split is recorded: descendants take the split from the data options."]
    out = [f"Data set `{split.get('dataset') or 'unknown'}`; the ancestry was trained on the base classes only."]
    names = split.get("names") or {}
    for part, label in (("base", "base (ancestry)"), ("open_world", "open-world (pseudo-descendant)"),
                        ("novel", "novel (descendant tasks)")):
        shown = names.get(part) or split[part]
        more = f", … ({len(shown) - 8} more)" if len(shown) > 8 else ""
        out.append(f"- {label}: {len(split[part])} classes: {', '.join(map(str, shown[:8]))}{more}")
    return out


def _result_lines(config: dict[str, Any]) -> list[str]:
    out = []
    acc = (config.get("card") or {}).get("base_accuracy")
    if isinstance(acc, (int, float)):
        out.append(f"- ancestry accuracy on held-out images of its base classes: {_pct(acc)}")
    for r in config.get("lineage") or []:
        res = r.get("results") or {}
        if r["kind"] == "ancestry" and isinstance(res.get("base_accuracy"), (int, float)):
            out.append(f"- ancestry `{r['name']}`: {_pct(res['base_accuracy'])} on held-out images of its base classes")
        if isinstance(res.get("pseudo_descendant_acc"), (int, float)):
            out.append(f"- condense `{r['name']}`: its pseudo-descendant reached {_pct(res['pseudo_descendant_acc'])} "
                       f"on held-out open-world images (chance {_pct(res.get('chance'))})")
    for run in (config.get("results") or {}).get("descendant_runs") or []:
        gain = run.get("gain") or {}
        ci = f" ± {100 * gain['ci95']:.1f}" if isinstance(gain.get("ci95"), (int, float)) else ""
        accs = (f" (learngene {_pct(run['learngene_acc'])}, random init {_pct(run.get('baseline_acc'))})"
                if isinstance(run.get("learngene_acc"), (int, float)) else "")
        n = gain.get("n", "?")
        out.append(f"- {run['kind']} `{run['name']}`: gain {100 * gain.get('mean', 0):+.1f}{ci} points over "
                   f"{n} task{'' if n == 1 else 's'}{accs}")
    return out or ["- nothing measured yet"]


def body(config: dict[str, Any]) -> str:
    """The human-readable part of the card."""
    kind, arch = config["kind"], _arch(config)
    lg = config.get("learngene") or {}
    what = (f"A learngene: layers {lg.get('layers')} ({', '.join(lg.get('layer_names') or [])}) of a `{arch}` "
            f"ancestry, chosen by `{lg.get('method')}`, with the ancestry's stem."
            if kind == "learngene" else f"An ancestry model `{arch}` trained on the base classes of its split.")
    return "\n".join([
        f"# {config['name']}", "", what, "",
        "Made with Learngene Studio. **Only Learngene Studio reads these files back** "
        f"(`python -m learngene hub import hf-hub:OWNER/NAME`, or `--{kind} hf-hub:OWNER/NAME` on any command): "
        f"`{arch}` is a studio architecture, not a timm model, so `timm.create_model(\"hf-hub:...\")` cannot load it.",
        "", "## Lineage", "", *_lineage_lines(config), "", "## Class split", "", *_split_lines(config.get("split") or {}),
        "", "## Measured results", "", *_result_lines(config), "", "## Files", "",
        f"- `{WEIGHTS}`: the weights (safetensors), SHA-256 `{config['sha256']}`",
        "- `config.json`: what the studio reads back (kind, hash, card or learngene layers, split, lineage, results)",
        ""])


def build(config: dict[str, Any], base_model: str | None):
    """The `huggingface_hub.ModelCard` of a Hub folder."""
    from huggingface_hub import ModelCard

    return ModelCard(f"---\n{metadata(config, base_model).to_yaml()}\n---\n\n{body(config)}")


def write(card, path: Path) -> None:
    """Save `card` to `path` through a temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        card.save(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_sha256(path: Path, what: str) -> str:
    """The weights hash the README's metadata records; `CheckpointError` when there is none."""
    from huggingface_hub import ModelCard

    if not path.is_file():
        raise CheckpointError(f"{what}: README.md (the model card) is missing")
    if path.stat().st_size > MAX_CONFIG:
        raise CheckpointError(f"{what}: README.md is larger than {MAX_CONFIG >> 20} MiB")
    try:
        data = ModelCard.load(path).data.to_dict()
    except Exception as exc:  # huggingface_hub raises ValueError or yaml errors for broken metadata
        raise CheckpointError(f"{what}: README.md's metadata cannot be read ({type(exc).__name__})") from None
    sha = data.get(SHA_KEY)
    if not isinstance(sha, str) or not sha:
        raise CheckpointError(f"{what}: README.md records no {SHA_KEY}; refused (an unhashed card cannot be checked)")
    return sha
