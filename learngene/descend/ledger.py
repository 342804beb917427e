"""A fair ledger: what each arm of a comparison cost, and the ancestry's own cost amortised.

Per arm (learngene descendant, random-init baseline, a converged baseline, fine-tuning, ...): epochs
trained, images seen (epochs x training images), FLOPs (training steps plus evaluations, counted by
`learngene.train.flops` with torch's FlopCounterMode) and wall time. The learngene's account also holds
the ancestry's training, shown once and spread over the descendants it serves (1, 10, 100): the
argument of the learngene papers is that this cost is paid once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from learngene.train.flops import training_cost

AMORTISE_OVER = (1, 10, 100)


@dataclass
class ArmCost:
    """What one arm cost, summed over its runs (tasks)."""

    arm: str
    runs: int = 0
    epochs: int = 0
    images_seen: int = 0
    flops: float = 0.0
    seconds: float = 0.0

    def add(self, epochs: int, n_train: int, evals: int, n_test: int, fpi: dict[str, int], seconds: float) -> None:
        self.runs += 1
        self.epochs += epochs
        self.images_seen += epochs * n_train
        self.flops += epochs * n_train * fpi["train"] + evals * n_test * fpi["forward"]
        self.seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def history_cost(history: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(epochs trained, evaluations made) of a run's history."""
    return len(history), sum(1 for r in history if r.get("test_acc") is not None)


def ancestry_cost(card: Any, fpi: dict[str, int] | None = None) -> dict[str, Any] | None:
    """The ancestry's training cost: the card's record (`accumulate` writes `extra["train_cost"]`), else
    derived from its epochs, training and held-out images and `fpi` (FLOPs per image of the ancestry);
    None when the card records no training."""
    extra = card.extra or {}
    if isinstance(extra.get("train_cost"), dict):
        return dict(extra["train_cost"])
    n_train, epochs = extra.get("train_images"), int(card.epochs or 0)
    if not isinstance(n_train, int) or epochs < 1 or fpi is None:
        return None
    n_test = int(extra.get("heldout_images") or 0)
    every = int((extra.get("train_config") or {}).get("eval_every") or 1)
    return training_cost(epochs, n_train, n_test, -(-epochs // every), fpi, extra.get("train_seconds"),
                         derived=True)


def ancestry_account(card: Any, ancestry: Any, img_size: int) -> dict[str, Any] | None:
    """`ancestry_cost` of `card`: its record, else derived with the FLOPs per image of `ancestry` (the
    model itself, counted at `img_size`); None when the card records no training."""
    from learngene.train.flops import flops_per_image

    recorded = ancestry_cost(card)
    if recorded is not None or ancestry is None or int(card.epochs or 0) < 1:
        return recorded
    return ancestry_cost(card, flops_per_image(ancestry, img_size))


def amortised(ancestry: dict[str, Any] | None, per_descendant: ArmCost,
              over: Sequence[int] = AMORTISE_OVER) -> list[dict[str, Any]]:
    """The learngene descendant's cost with the ancestry's shared among `n` descendants, for each n."""
    if ancestry is None:
        return []
    runs = max(1, per_descendant.runs)
    own_flops, own_s = per_descendant.flops / runs, per_descendant.seconds / runs
    out = []
    for n in over:
        out.append({"descendants": n, "flops": own_flops + ancestry["flops"] / n,
                    "seconds": own_s + (ancestry.get("seconds") or 0.0) / n})
    return out


def fmt_flops(x: float | None) -> str:
    """'3.2 GFLOP', '410 TFLOP'."""
    if x is None or not math.isfinite(x):
        return "n/a"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} FLOP"


def format_ledger(arms: Sequence[ArmCost], ancestry: dict[str, Any] | None = None,
                  amortised_rows: Sequence[dict[str, Any]] = (), descendant: str = "learngene descendant") -> str:
    """The ledger as plain text (per arm, then the ancestry and the amortised account)."""
    w = max([20, *(len(a.arm) for a in arms)])
    lines = ["cost ledger (per arm, summed over its runs; FLOPs counted by torch's FlopCounterMode)",
             f"{'arm':<{w}} {'runs':>4} {'epochs':>7} {'images seen':>12} {'FLOPs':>12} {'wall s':>8}"]
    for a in arms:
        lines.append(f"{a.arm:<{w}} {a.runs:>4} {a.epochs:>7} {a.images_seen:>12,} {fmt_flops(a.flops):>12} "
                     f"{a.seconds:>8.1f}")
    if ancestry is not None:
        sec = ancestry.get("seconds")
        lines.append(f"the ancestry's own training: {ancestry['epochs']} epochs, {ancestry['images_seen']:,} images "
                     f"seen, {fmt_flops(ancestry['flops'])}, {'n/a' if sec is None else f'{sec:.0f} s'}"
                     + (" (derived from its card)" if ancestry.get("derived_from_card") else ""))
        for row in amortised_rows:  # without the ancestry's wall time, only FLOPs are amortised
            secs = "wall time n/a" if sec is None else f"{row['seconds']:.1f} s"
            lines.append(f"  {descendant} + the ancestry shared by {row['descendants']:>3}: "
                         f"{fmt_flops(row['flops'])}, {secs} per descendant")
    else:
        lines.append("the ancestry's own training: not recorded in its card")
    return "\n".join(lines)


def pair_ledger(pairs: Sequence[Any], sizes: dict[int, tuple[int, int]], fpi: dict[str, int],
                ancestry: dict[str, Any] | None = None, test_images: int = 0) -> dict[str, Any]:
    """The ledger of `train`'s pairs: per role (and the converged baseline, when trained) what it cost.

    Args:
        pairs: `PairResult`s.
        sizes: task index -> (training images, test images); a task not in it counts n_way x K training
            images and `test_images` test images.
        fpi: FLOPs per image of the descendant architecture (`flops_per_image`; both arms share it).
        ancestry: the ancestry's training cost (`ancestry_cost`), or None.
    """
    arms = {role: ArmCost(role) for role in ("learngene", "baseline")}
    for p in pairs:
        n_train, n_test = sizes.get(p.task, (p.n_way * p.k_shot, test_images))
        for role in ("learngene", "baseline"):
            run = p.run(role)
            epochs, evals = history_cost(run.history)
            arms[role].add(epochs, n_train, evals, n_test, fpi, run.wall_time)
        strong = p.extra.get("strong_baseline") if isinstance(p.extra, dict) else None
        if isinstance(strong, dict):
            arm = arms.setdefault("baseline-converged", ArmCost("baseline-converged"))
            arm.add(int(strong["epochs"]), n_train, int(strong.get("evals", strong["epochs"])), n_test, fpi,
                    float(strong.get("wall_time") or 0.0))
    return ledger_dict(list(arms.values()), fpi, ancestry, arms["learngene"])


def ledger_dict(arms: Sequence[ArmCost], fpi: dict[str, int] | None, ancestry: dict[str, Any] | None,
                descendant: ArmCost | None, descendant_label: str = "") -> dict[str, Any]:
    """A ledger as JSON: the arms, the FLOPs per image they were counted with, the ancestry's cost and
    the cost of one descendant (`descendant`'s mean per run) with the ancestry's amortised over 1/10/100.
    `descendant_label` names what that descendant is when it is not `train`'s learngene arm."""
    out = {"arms": [a.to_dict() for a in arms], "flops_per_image": fpi, "ancestry": ancestry,
           "amortised": [] if descendant is None else amortised(ancestry, descendant)}
    if descendant_label:
        out["descendant"] = descendant_label
    return out


def runs_ledger(runs: Iterable[tuple[str, Sequence[dict[str, Any]], int, int, float, bool]], fpi: dict[str, int],
                ancestry: dict[str, Any] | None, arms: Sequence[str] = (),
                descendant_label: str = "learngene descendant") -> dict[str, Any]:
    """The ledger of a study's runs (`advantages`, `sizes`), all of one architecture.

    Args:
        runs: per run (arm, history, training images, test images, wall seconds, whether it is one of the
            descendants the ancestry's cost is amortised over); epochs and evaluations come from the
            history (`history_cost`), a non-finite wall time counts 0 s.
        fpi: FLOPs per image of the architecture (`learngene.train.flops.flops_per_image`).
        ancestry: the ancestry's training cost (`ancestry_cost`), or None.
        arms: the order of the arms (others follow in the order met).
        descendant_label: what one descendant of the amortised account is.
    """
    costs = {a: ArmCost(a) for a in arms}
    mean = ArmCost(descendant_label)
    for arm, history, n_train, n_test, seconds, is_descendant in runs:
        epochs, evals = history_cost(history)
        seconds = seconds if math.isfinite(seconds) else 0.0
        costs.setdefault(arm, ArmCost(arm)).add(epochs, n_train, evals, n_test, fpi, seconds)
        if is_descendant:
            mean.add(epochs, n_train, evals, n_test, fpi, seconds)
    return ledger_dict(list(costs.values()), fpi, ancestry, mean if mean.runs else None, descendant_label)


def format_ledger_dict(ledger: dict[str, Any]) -> str:
    """`format_ledger` of a `pair_ledger` or `runs_ledger` (or a ledger read back from JSON)."""
    return format_ledger([ArmCost(**a) for a in ledger["arms"]], ledger.get("ancestry"), ledger.get("amortised", ()),
                         ledger.get("descendant") or "learngene descendant")
