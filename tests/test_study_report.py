"""The numbers behind the published four-advantage table (`learngene.descend.advantages_report`), checked by
hand: on small made-up histories every mean, paired gain, interval, p-value, speed-up, fixed-target epoch,
spread, K match, baseline-at-chance flag and diverged / dropped count is computed here from first
principles (closed forms, exact enumeration), not by calling the code under test a second time."""

from __future__ import annotations

import itertools
import math
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from learngene.descend import advantages_report as report
from learngene.descend.advantages import Run, Study
from learngene.descend.stats import mean_ci, paired_tests, t_quantile

LR, LR_HI, WD = 1e-3, 1e-2, 0.0
STUDY = Study(tasks=3, n_way=4, k_shot=2, shots=(1, 2), lrs=(LR, LR_HI), wds=(WD,), lr=LR, weight_decay=WD, epochs=4,
              eval_every=1, models=("baseline", "heur"), target_acc="baseline")
CHANCE = 0.25


def _t2_quantile(p: float) -> float:
    """Student's t quantile for df = 2 in closed form: (2p - 1) / sqrt(2 p (1 - p))."""
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def _t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p of Student's t for df = 2 or 4 in closed form (Abramowitz & Stegun 26.7.3)."""
    theta = math.atan(abs(t) / math.sqrt(df))
    if df == 2:
        return 1 - math.sin(theta)
    if df == 4:
        return 1 - math.sin(theta) * (1 + math.cos(theta) ** 2 / 2)
    raise ValueError(df)


def _wilcoxon_exact_p(d: list[float]) -> float:
    """Two-sided exact signed-rank p by enumerating every sign pattern (distinct non-zero |d| only)."""
    mags = sorted(abs(x) for x in d)
    assert len(set(mags)) == len(mags) and mags[0] > 0
    rank = {m: i + 1 for i, m in enumerate(mags)}
    w = sum(rank[abs(x)] for x in d if x > 0)
    sums = [sum(r for r, s in zip(range(1, len(d) + 1), signs, strict=True) if s)
            for signs in itertools.product((0, 1), repeat=len(d))]
    lower = sum(s <= w for s in sums) / len(sums)
    upper = sum(s >= w for s in sums) / len(sums)
    return min(1.0, 2 * min(lower, upper))


def _curve(accs: list[float], seconds_per_epoch: float = 1.0) -> list[dict]:
    return [{"epoch": i + 1, "time": seconds_per_epoch * (i + 1), "test_acc": a} for i, a in enumerate(accs)]


def _run(model, task, k, lr, history, main=False):
    return Run(model, task, k, lr, WD, 1 if main else 4, history=history, wall_s=1.0, timing="sequential", main=main)


BASE_MAIN = [[0.25, 0.30, 0.40, 0.45], [0.25, 0.25, 0.35, 0.40], [0.30, 0.35, 0.40, 0.50]]  # finals .45 .40 .50
HEUR_MAIN = [[0.40, 0.50, 0.60, 0.70], [0.30, 0.45, 0.55, 0.60], [0.50, 0.60, 0.70, 0.90]]  # finals .70 .60 .90


def _result(base_main=BASE_MAIN, heur_main=HEUR_MAIN) -> report.AncestryResult:
    runs = []
    for t in range(3):
        runs.append(_run("baseline", t, 2, LR, _curve(base_main[t]), main=True))
        runs.append(_run("heur", t, 2, LR, _curve(heur_main[t], 0.5), main=True))
    # grid cell lr 1e-2: the baseline near chance, one heur run diverged (counts as chance, 0.25)
    for t, acc in enumerate([0.25, 0.26, 0.27]):
        runs.append(_run("baseline", t, 2, LR_HI, [{"epoch": 4, "test_acc": acc}]))
    heur_hi = [[{"epoch": 4, "test_acc": 0.5}], [{"epoch": 3, "test_acc": 0.3}, {"epoch": 4, "diverged": True}],
               [{"epoch": 4, "test_acc": 0.4}]]
    runs += [_run("heur", t, 2, LR_HI, h) for t, h in enumerate(heur_hi)]
    # K = 1: the baseline at chance, one heur run without any accuracy (dropped from the means)
    for t, acc in enumerate([0.25, 0.30, 0.20]):
        runs.append(_run("baseline", t, 1, LR, [{"epoch": 4, "test_acc": acc}]))
    heur_k1 = [[{"epoch": 4, "test_acc": 0.4}], [{"epoch": 4, "loss": 1.0}], [{"epoch": 4, "test_acc": 0.6}]]
    runs += [_run("heur", t, 1, LR, h) for t, h in enumerate(heur_k1)]
    return report.AncestryResult("anc.safetensors", "tiny", {"baseline": [], "heur": [1, 2]}, runs, 18.0)


# ------------------------------------------------------------------ statistics (scipy underneath)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_the_closed_form_for_two_degrees_of_freedom(p):
    assert t_quantile(p, 2) == pytest.approx(_t2_quantile(p), rel=1e-10)


def test_paired_p_values_against_hand_computed_cases():
    # identical non-zero gains: an infinite t statistic (p = 0); every sign agrees, Wilcoxon exact 2 / 2^n
    same = paired_tests([0.1] * 5)
    assert same == {"n": 5, "t_p": 0.0, "wilcoxon_p": pytest.approx(2 / 2 ** 5)}
    assert paired_tests([0.1] * 10)["wilcoxon_p"] == pytest.approx(2 / 2 ** 10)
    # no task differs at all: p = 1 for both
    assert paired_tests([0.0, 0.0, 0.0]) == {"n": 3, "t_p": 1.0, "wilcoxon_p": 1.0}
    # 1..5: mean 3, sd sqrt(2.5), t = 3 / sqrt(2.5 / 5), df 4
    t = 3 / math.sqrt(2.5 / 5)
    res = paired_tests([1, 2, 3, 4, 5])
    assert res["t_p"] == pytest.approx(_t_two_sided_p(t, 4), rel=1e-9)
    assert res["wilcoxon_p"] == pytest.approx(_wilcoxon_exact_p([1, 2, 3, 4, 5])) == pytest.approx(0.0625)
    # one negative gain: mean 1, sd sqrt(12.5)
    d = [1, 2, 3, 4, -5]
    res = paired_tests(d)
    assert res["t_p"] == pytest.approx(_t_two_sided_p(1 / math.sqrt(12.5 / 5), 4), rel=1e-9)
    assert res["wilcoxon_p"] == pytest.approx(_wilcoxon_exact_p(d)) == pytest.approx(0.625)
    # None / NaN / inf are left out and n says so; under two gains no test
    assert paired_tests([1, None, 2, float("nan"), 3, 4, float("inf"), 5])["n"] == 5
    assert paired_tests([0.3, None]) == {"n": 1, "t_p": None, "wilcoxon_p": None}


# ------------------------------------------------------------------ summarize: the published table's numbers


def test_summarize_arithmetic_by_hand():
    s = report.summarize(_result(), STUDY)
    base, heur = s["baseline"], s["heur"]
    # performance: mean and 95% t-interval (df = 2) of the final accuracies
    q = _t2_quantile(0.975)
    assert base["acc"][0] == pytest.approx(0.45)
    assert base["acc"][1] == pytest.approx(q * 0.05 / math.sqrt(3))  # sd of .45 .40 .50 is 0.05
    assert heur["acc"][0] == pytest.approx((0.7 + 0.6 + 0.9) / 3)
    # the gain is paired per task: .25 .20 .40
    gains = [0.25, 0.20, 0.40]
    g_mean = sum(gains) / 3
    g_sd = math.sqrt(sum((g - g_mean) ** 2 for g in gains) / 2)
    assert heur["gain"][0] == pytest.approx(g_mean)
    assert heur["gain"][1] == pytest.approx(q * g_sd / math.sqrt(3))
    assert heur["tests"]["n"] == 3
    assert heur["tests"]["t_p"] == pytest.approx(_t_two_sided_p(g_mean / (g_sd / math.sqrt(3)), 2), rel=1e-9)
    assert heur["tests"]["wilcoxon_p"] == pytest.approx(_wilcoxon_exact_p(gains)) == pytest.approx(0.25)
    # convergence to the baseline's final accuracy on each task (.45 .40 .50): heur at epochs 2, 2, 1;
    # the baseline at 4, 4, 4; heur's epochs take 0.5 s each
    c = heur["conv"]
    assert (c["reached"], c["of"]) == (3, 3)
    assert c["epochs"] == pytest.approx(5 / 3) and c["seconds"] == pytest.approx(2.5 / 3)
    assert c["speedup_epochs"] == pytest.approx(12 / 5) and c["speedup_seconds"] == pytest.approx(12 / 2.5)
    assert base["conv"]["epochs"] == 4 and base["conv"]["speedup_epochs"] == pytest.approx(1.0)
    # sensitivity over the two lr cells: heur .7333 and (.5 + .25 diverged + .4) / 3
    hi = (0.5 + 0.25 + 0.4) / 3
    main = 2.2 / 3
    assert heur["grid"]["cells"] == pytest.approx([main, hi])
    assert heur["grid"]["mean"] == pytest.approx((main + hi) / 2)
    assert heur["grid"]["worst"] == pytest.approx(hi)
    assert heur["grid"]["spread"] == pytest.approx(main - hi)
    assert heur["grid"]["std"] == pytest.approx((main - hi) / math.sqrt(2))
    assert heur["grid"]["diverged"] == 1
    assert base["grid"]["spread"] == pytest.approx(0.45 - 0.26)
    # sample efficiency: heur K=1 averages the two runs with an accuracy; the baseline's K=2 (.45) is the
    # reference: heur matches it at K=1 (.5), the baseline only at K=2 (equal counts as matching)
    assert heur["by_k"][1][0] == pytest.approx(0.5) and base["by_k"][1][0] == pytest.approx(0.25)
    assert heur["match_k"] == 1 and base["match_k"] == 2
    # every run of a row is counted: 3 main + 3 grid + 3 K=1; one diverged, one dropped (no accuracy)
    assert (heur["runs"], heur["diverged"], heur["dropped"]) == (9, 1, 1)
    assert (base["runs"], base["diverged"], base["dropped"]) == (9, 0, 0)


def test_fixed_target_epochs_on_hand_made_curves():
    f = report.summarize(_result(), STUDY)["heur"]["fixed"]
    # 50%: heur first reaches it at epochs 2, 3, 1; the baseline only on task 2, at epoch 4
    fifty = f["50%"]
    assert fifty["model"]["by_task"] == {0: 2, 1: 3, 2: 1} and fifty["model"]["epochs"] == pytest.approx(2.0)
    assert fifty["baseline"]["by_task"] == {0: None, 1: None, 2: 4}
    assert (fifty["baseline"]["reached"], fifty["baseline"]["of"]) == (1, 3)
    assert fifty["speedup"] == pytest.approx(4 / 1)  # the one task both reached
    # midpoint between chance (.25) and heur's own final accuracy on each task
    mid = f["midpoint"]
    assert mid["targets"] == pytest.approx({0: 0.475, 1: 0.425, 2: 0.575})
    assert mid["model"]["by_task"] == {0: 2, 1: 2, 2: 2}
    assert mid["baseline"]["reached"] == 0 and math.isnan(mid["speedup"])
    text = report.table(_result(), STUDY)
    heur_row = next(line for line in text.splitlines() if line.startswith("| heur |"))
    assert "| 2.0 (3/3) | 2.0 (3/3) / not reached (0/3) |" in heur_row
    base_row = next(line for line in text.splitlines() if line.startswith("| baseline |"))
    assert "| 4.0 (1/3) |" in base_row


def test_a_baseline_at_chance_is_flagged_where_the_speed_up_is_shown():
    learned = _result()
    st = report.baseline_status(learned, STUDY)
    assert st["main"]["learned"] is True  # .45 ± .124: the lower end .326 is more than 5 points above .25
    assert st["grid"][(LR_HI, WD)]["learned"] is False and st["by_k"][1]["learned"] is False
    assert "**learned**" in report.baseline_line(learned, STUDY)
    assert "baseline at chance" not in report.table(learned, STUDY)
    assert report.grid_table(learned, STUDY).splitlines()[-1] == "| baseline learned? | yes | at chance |"
    assert "K=1 at chance (25.0 ± " in report.k_line(learned, STUDY)
    # the same study with a baseline that ends near chance in the main cell: .28 .27 .29
    flat = [[0.25, 0.25, 0.27, 0.28], [0.25, 0.26, 0.26, 0.27], [0.26, 0.27, 0.28, 0.29]]
    at_chance = _result(base_main=flat)
    assert report.baseline_status(at_chance, STUDY)["main"]["learned"] is False
    assert "**at chance**" in report.baseline_line(at_chance, STUDY)
    heur_row = next(line for line in report.table(at_chance, STUDY).splitlines() if line.startswith("| heur |"))
    assert "(baseline at chance)" in heur_row
    md = report.markdown([at_chance], STUDY, [], Path("."), 18.0)
    assert "**at chance**" in md and "(baseline at chance)" in md


def test_diverged_and_dropped_are_counted_in_the_table():
    lines = report.table(_result(), STUDY).splitlines()
    heur_row = next(line for line in lines if line.startswith("| heur |"))
    assert heur_row.endswith("| 9 | 1 | 1 |")
    # the heur - baseline gains on the 3 tasks are 0.25, 0.20, 0.40: t = mean / (sd / sqrt(3)) with df = 2,
    # and the exact Wilcoxon p of 3 gains of one sign is 2 / 2^3
    gains = [0.25, 0.20, 0.40]
    t = statistics.mean(gains) / (statistics.stdev(gains) / math.sqrt(3))
    assert f"{_t_two_sided_p(t, 2):.3f} / 0.250 (n=3)" in heur_row


def test_a_study_csv_gives_back_the_same_report(tmp_path):
    from learngene.tables import write_csv

    res = _result()
    path = write_csv(tmp_path / "advantages.csv", [{**r, "device": "cpu"} for r in report.csv_rows([res], STUDY)])
    (again,), study = report.load_csv(path)
    assert (study.models, study.k_shot, study.shots, study.lrs, study.wds, study.n_way, study.target_acc) == \
        (STUDY.models, STUDY.k_shot, STUDY.shots, STUDY.lrs, STUDY.wds, STUDY.n_way, "baseline")
    assert report.table(again, study) == report.table(res, STUDY)
    assert report.grid_k_table(again, study) == report.grid_k_table(res, STUDY)
    assert report.grid_table(again, study) == report.grid_table(res, STUDY)
    # a CSV without the n_way column (the shipped one) takes it from the given study
    rows = [{k: v for k, v in r.items() if k != "n_way"} for r in report.csv_rows([res], STUDY)]
    (_, study5) = report.load_csv(write_csv(tmp_path / "old.csv", rows), replace(Study(), n_way=4))
    assert study5.n_way == 4


def test_figures_are_matplotlib_svgs_and_reproducible(tmp_path):
    paths = report.write_figures([_result()], STUDY, tmp_path / "a")
    assert sorted(p.name for p in paths) == ["advantages-tiny-convergence.svg", "advantages-tiny-lr.svg",
                                            "advantages-tiny-shots.svg"]
    for p in paths:
        root = ET.fromstring(p.read_text())
        assert root.tag.endswith("svg")
        text = p.read_text()
        assert "Matplotlib" in text and ">heur<" in text and ">chance<" in text and "<dc:date>" not in text
    again = report.write_figures([_result()], STUDY, tmp_path / "b")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_importing_the_library_loads_neither_scipy_nor_matplotlib():
    code = ("import sys, learngene, learngene.descend, learngene.descend.advantages_report; "
            "print(sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_mean_ci_drops_what_it_cannot_average():
    mean, half = mean_ci([0.4, None, 0.6, float("nan"), 0.5])
    assert mean == pytest.approx(0.5) and half == pytest.approx(_t2_quantile(0.975) * 0.1 / math.sqrt(3))
