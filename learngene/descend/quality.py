"""Quality gates: is what a step builds on fit to build on?

One rule judges every model against chance (`learngene.descend.summary.learning_state`: learned / not
clearly above chance / at chance, or unknown). The gates built on it:

- **the ancestry** (`ancestry_quality`, `check_ancestry`): its held-out accuracy on its base classes, from
  its model card, or measured on the held-out base images when a trained card lacks it. An ancestry at
  chance has learned nothing to pass on: the steps that build on it (condense, probe, inherit, train,
  sweep, advantages, sizes) refuse it unless forced (`--force`; "use anyway" in the app). Not clearly
  above chance: a warning, and the step goes on. A card that records no training (an imported or
  uploaded model, a test fixture with random weights) and no data to measure on: "unknown", and on.
- **the pseudo-descendant** (`learngene.condense.pseudo.pd_quality`) and **the baseline**
  (`summarize_pairs`' `baseline_state`) warn and go on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from learngene.errors import CheckpointError
from learngene.train.budget import judge

FORCE_HINT = "pass --force to use it anyway"


def _chance(card: Any) -> float:
    return 1.0 / max(1, int(card.spec.num_classes))


def _heldout_images(card: Any) -> int:
    extra = card.extra or {}
    n = extra.get("heldout_images")
    if isinstance(n, int) and n > 0:
        return n
    per = extra.get("holdout_per_class")
    return int(per) * int(card.spec.num_classes) if isinstance(per, int) and per > 0 else 0


def recorded_training(card: Any) -> bool:
    """Whether the card says the ancestry was trained here (`accumulate` records epochs and settings)."""
    return int(card.epochs or 0) > 0 or isinstance((card.extra or {}).get("train_config"), dict)


def measure_base_accuracy(model: Any, card: Any, ds: Any) -> tuple[float, int] | None:
    """(accuracy, images) of the ancestry on its held-out base-class images, split as `accumulate` split
    them (its seed and holdout_per_class); None when the data's base classes are not the card's."""
    from learngene.train.accumulate import base_data
    from learngene.train.config import TrainConfig
    from learngene.train.trainer import evaluate

    if ds is None or len(ds.split.base) != int(card.spec.num_classes):
        return None
    per = int((card.extra or {}).get("holdout_per_class") or 50)
    _, _, x, y = base_data(ds, TrainConfig(seed=int(card.seed or 0)), per)
    if len(y) == 0:
        return None
    _, acc = evaluate(model, x, y)
    return float(acc), len(y)


def ancestry_quality(card: Any, model: Any = None, ds: Any = None) -> dict[str, Any]:
    """The ancestry's verdict: {"state", "line", "source" ("card", "measured" or "unknown"), "acc", "lo",
    "hi", "n", "chance"}. The card's accuracy when it has one (and records training); else measured when
    it records training and `model` and `ds` are given; else unknown."""
    chance = _chance(card)
    if recorded_training(card) and card.base_accuracy is not None:
        verdict = judge(float(card.base_accuracy), _heldout_images(card), chance)
        return {**verdict, "source": "card"}
    if recorded_training(card) and model is not None:
        measured = measure_base_accuracy(model, card, ds)
        if measured is not None:
            return {**judge(measured[0], measured[1], chance), "source": "measured"}
    why = "the card records no training" if not recorded_training(card) else "its card has no held-out accuracy"
    return {**judge(None, 0, chance), "source": "unknown",
            "line": f"unknown: {why} and there is no held-out base data to measure it on (chance {chance:.1%})"}


def quality_of_record(record: Any) -> dict[str, Any] | None:
    """A verdict stored elsewhere (a learngene file's extra), or None when it is not one."""
    return record if isinstance(record, dict) and record.get("state") and record.get("line") else None


def check_ancestry(quality: dict[str, Any], where: str | Path, force: bool = False,
                   say: Callable[[str], None] = print) -> dict[str, Any]:
    """Say the ancestry's verdict; refuse (`CheckpointError`) one at chance unless `force`.

    Returns the verdict (with "forced": True when an at-chance ancestry was used anyway)."""
    state, line = quality["state"], quality["line"]
    if state == "at chance" and not force:
        raise CheckpointError(
            f"the ancestry {where} is at chance on its held-out base classes ({line}, {quality['source']}): it has "
            f"learned nothing for a descendant to inherit; train it longer (accumulate --epochs), or {FORCE_HINT}")
    if state == "at chance":
        say(f"WARNING: the ancestry is {line}; used anyway (--force): read nothing into what it passes on")
        return {**quality, "forced": True}
    if state == "not clearly above chance":
        say(f"WARNING: the ancestry is {line} on its held-out base classes; what it passes on may be noise")
    else:
        say(f"ancestry quality: {line} ({quality['source']})")
    return quality


def gate_ancestry(card: Any, where: str | Path, force: bool = False, model: Any = None, ds: Any = None,
                  say: Callable[[str], None] = print) -> dict[str, Any]:
    """`ancestry_quality` then `check_ancestry`: the one call each command makes."""
    return check_ancestry(ancestry_quality(card, model, ds), where, force, say)
