"""Did a model learn? One three-state rule, and training budgets that adapt to the answer.

The rule (`learning_state`) judges an accuracy against chance from its 95% interval:

- **learned**: the interval's lower end is clearly above chance, by more than `chance_margin(chance)`
  (5 accuracy points, or chance itself when chance is under 5%: twice chance for many classes);
- **at chance**: the whole interval lies at most that margin above chance (or below chance): whatever
  the model does, it is no better than guessing by more than a trivial gain (19.3% with an interval of
  18.1% to 20.5% at chance 20%; or 2.5% on 48 classes measured on 4,800 images, interval 2.1% to 3.0%:
  statistically a hair above chance 2.1%, useless all the same);
- **not clearly above chance**: the interval straddles that line, e.g. 32.3% with an interval down to
  19.8% at chance 20%: above chance by its mean, but the interval does not rule chance out. Such a
  result is not called "at chance", and is not trusted as learned either.

An accuracy that is not known (no held-out data, a card without it) is "unknown".

The interval is the caller's: a t-interval over tasks (`learngene.descend.stats.mean_ci`), or for one
accuracy measured on n held-out images the Wilson score interval (`binomial_interval`).

`train_in_rounds` trains with a budget that adapts: rounds of a fixed number of epochs, each with its
own learning-rate schedule (a warm restart, as in SGDR: Loshchilov & Hutter 2017), held-out accuracy
measured every epoch, until the model has clearly learned (or, for a baseline trained to convergence,
until its accuracy plateaus), or its cap in epochs or seconds runs out. It records what it did.

This module sits under `train/` so that condensing (which comes before `descend/` in the import order)
can use the rule; `learngene.descend.summary` re-exports it for the comparisons.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

LearningState = Literal["learned", "not clearly above chance", "at chance", "unknown"]
STATES: tuple[LearningState, ...] = ("learned", "not clearly above chance", "at chance", "unknown")

CHANCE_MARGIN = 0.05
"""Accuracy points above chance that count as "clearly" (capped at chance itself, see `chance_margin`)."""
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def chance_margin(chance: float) -> float:
    """How far above chance "clearly" starts: 5 points, or chance itself when chance is smaller (so a
    1000-class model is judged on its own scale: above twice chance)."""
    return min(CHANCE_MARGIN, max(0.0, chance))


def binomial_interval(acc: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on `n` independent images (95% by default)."""
    if n <= 0 or not math.isfinite(acc):
        return acc, acc
    p = min(max(acc, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def learning_state(acc: float | None, lo: float | None, hi: float | None, chance: float) -> LearningState:
    """The three-state rule (module docstring): "learned", "not clearly above chance" or "at chance";
    "unknown" when `acc` is None or not finite. An undefined interval (`lo`/`hi` None or NaN, e.g. one
    task) is the accuracy itself."""
    if acc is None or not math.isfinite(acc):
        return "unknown"
    lo = acc if lo is None or not math.isfinite(lo) else lo
    hi = acc if hi is None or not math.isfinite(hi) else hi
    margin = chance_margin(chance)
    if lo > chance + margin:
        return "learned"
    if hi <= chance + margin:
        return "at chance"
    return "not clearly above chance"


def describe_learning(acc: float | None, lo: float | None, hi: float | None, chance: float,
                      what: str = "") -> str:
    """One line: 'not clearly above chance: 32.3%, interval down to 19.8%, chance 20.0%' (what: a prefix
    such as 'baseline')."""
    state = learning_state(acc, lo, hi, chance)
    head = f"{what} " if what else ""
    if state == "unknown":
        return f"{head}unknown: no held-out accuracy to judge it by (chance {chance:.1%})"
    lo = acc if lo is None or not math.isfinite(lo) else lo
    hi = acc if hi is None or not math.isfinite(hi) else hi
    if lo == hi:
        interval = "no interval"
    elif state == "not clearly above chance":
        interval = f"interval down to {lo:.1%}"
    else:
        interval = f"interval {lo:.1%} to {hi:.1%}"
    return f"{head}{state}: {acc:.1%}, {interval}, chance {chance:.1%}"


def judge(acc: float | None, n: int, chance: float) -> dict[str, Any]:
    """The rule applied to one accuracy measured on `n` images: {acc, lo, hi, n, chance, state, line}."""
    lo, hi = (None, None) if acc is None else binomial_interval(acc, n)
    return {"acc": acc, "lo": lo, "hi": hi, "n": n, "chance": chance,
            "state": learning_state(acc, lo, hi, chance), "line": describe_learning(acc, lo, hi, chance)}


# ------------------------------------------------------------------ budgets that adapt


@dataclass(frozen=True)
class Budget:
    """How long an adaptive training may go on.

    Attributes:
        round_epochs: epochs of the first round (one learning-rate schedule: the fixed budget of old, so a
            model that learns clearly in it is trained exactly as before); each later round is
            `growth` times longer (SGDR's T_mult), so its low-learning-rate end lasts longer too.
        growth: how much longer each round is than the one before (1 = all rounds equal).
        max_epochs: cap on all rounds together.
        max_seconds: cap on the wall time (checked after every epoch; None = no cap).
        until: "learned" stops at the end of the first round after which the model has clearly learned;
            "plateau" (a baseline trained to convergence) stops when a round no longer improves the best
            held-out accuracy by `min_gain`.
        patience: rounds without such an improvement before a model that has not learned is given up
            ("plateau"); with `until="plateau"` one round suffices.
        min_gain: the improvement (accuracy points) that counts.
    """

    round_epochs: int
    max_epochs: int
    max_seconds: float | None = None
    until: Literal["learned", "plateau"] = "learned"
    growth: int = 2
    patience: int = 3
    min_gain: float = 0.01

    def round_length(self, r: int) -> int:
        return self.round_epochs * self.growth ** r


def outcome_line(out: dict[str, Any]) -> str:
    """'learned clearly after 9 epochs, 41 s' / 'budget ran out (40 epochs, 180 s): not clearly above chance'."""
    e, s = out["epochs"], out["seconds"]
    took = f"{e} epoch{'s' if e != 1 else ''}, {s:.0f} s"
    stopped = out["stopped"]
    if stopped == "learned":
        return f"learned clearly after {took}"
    if stopped == "plateau":
        return f"plateaued after {took} ({out['state']})"
    if stopped == "diverged":
        return f"diverged after {took}"
    cap = "epochs" if stopped == "epochs" else "time"
    return f"budget ran out ({cap} cap) after {took}: {out['state']}"


def train_in_rounds(make_trainer: Callable[[int, int], Any], budget: Budget, judge_acc: Callable[[float | None], str],
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train round after round until `budget` says stop.

    Args:
        make_trainer: (round index, epochs of the round) -> a `Trainer` on the same model (round 0 is
            the first schedule; later rounds restart the schedule with their own data-order seed).
        budget: the caps and the stopping rule.
        judge_acc: held-out accuracy -> its `LearningState`.
        on_epoch: called with every epoch record (epochs and time counted over all rounds).
    Returns:
        (history over all rounds, outcome {"stopped", "state", "epochs", "seconds", "rounds",
        "best_acc", "line"}); the history's records carry "round".
    """
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    best, rounds_flat, rounds, stopped = -1.0, 0, 0, "epochs"
    while len(history) < budget.max_epochs:
        epochs = min(budget.round_length(rounds), budget.max_epochs - len(history))
        if not _run_round(make_trainer(rounds, epochs), rounds, history, budget, t0, on_epoch):
            stopped = "diverged"
            break
        rounds += 1
        acc = _last_acc(history)
        if budget.until == "learned" and judge_acc(acc) == "learned":
            stopped = "learned"
            break
        gained = acc is not None and acc > best + budget.min_gain
        best = max(best, acc if acc is not None else -1.0)
        rounds_flat = 0 if gained else rounds_flat + 1
        if rounds_flat >= (1 if budget.until == "plateau" else budget.patience):
            stopped = "plateau"
            break
        if budget.max_seconds is not None and time.perf_counter() - t0 > budget.max_seconds:
            stopped = "seconds"
            break
    return history, _outcome(history, stopped, rounds, budget, judge_acc, t0)


def _run_round(trainer: Any, r: int, history: list[dict[str, Any]], budget: Budget, t0: float,
               on_epoch: Callable[[dict[str, Any]], None] | None) -> bool:
    """Run one round's trainer, appending its epoch records (epochs and times counted from the first
    round) to `history`; False when it diverged. A round stopped by the time cap before its evaluation
    is evaluated once more so that its last record carries an accuracy."""
    from learngene.errors import DivergedError

    offset, start = len(history), time.perf_counter() - t0

    def record(tr: Any, rec: dict[str, Any]) -> None:
        rec = {**rec, "epoch": offset + rec["epoch"], "time": start + rec["time"], "round": r}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        if budget.max_seconds is not None and time.perf_counter() - t0 > budget.max_seconds:
            tr.request_stop()

    trainer.add_callback("on_epoch_end", record)
    try:
        trainer.run()
    except DivergedError:
        return False
    if history and history[-1].get("test_acc") is None and hasattr(trainer, "evaluate_now"):
        measured = trainer.evaluate_now()
        if measured is not None:
            history[-1].update(test_loss=measured[0], test_acc=measured[1])
    return True


def _outcome(history: list[dict[str, Any]], stopped: str, rounds: int, budget: Budget,
             judge_acc: Callable[[float | None], str], t0: float) -> dict[str, Any]:
    acc = _last_acc(history)
    out = {"stopped": stopped, "state": judge_acc(acc), "epochs": len(history),
           "seconds": round(time.perf_counter() - t0, 1), "rounds": rounds, "final_acc": acc,
           "best_acc": max((r["test_acc"] for r in history if r.get("test_acc") is not None), default=None),
           "budget": {"round_epochs": budget.round_epochs, "max_epochs": budget.max_epochs,
                      "max_seconds": budget.max_seconds, "until": budget.until}}
    out["line"] = outcome_line(out)
    return out


def _last_acc(history: list[dict[str, Any]]) -> float | None:
    for rec in reversed(history):
        if rec.get("test_acc") is not None:
            return float(rec["test_acc"])
    return None
