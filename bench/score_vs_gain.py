"""Which similarity to trust: Spearman's rho between each method's layer scores and the measured gains.

Reads, per shipped ancestry, the shipped similarity results (`assets/similarity/<stem>-<view>.json`,
made by `assets/similarity.sh`) and the measured single-layer gains (`assets/<stem>.probe.json`,
made by `learngene probe`), and reports for every view: the layers it picks, its score spread, and
the rank correlation of its scores with the gains (every ancestry layer is one pair), with a bootstrap
interval over the probe's tasks and, for a result condensed over several pseudo-descendant seeds
(`condense --pd-seeds N`), over those seeds too; the table says which noise each interval holds. Nothing
is trained here; the figures come from the two commands above, whose settings the table repeats.

    python -m bench.score_vs_gain --write-docs
    python -m bench.score_vs_gain --similarity RESULT.json --write-docs   # plus saved condense results

`--similarity` adds rows for saved `condense` results of a shipped ancestry (matched by its sha256), e.g.
CKA over three pseudo-descendant seeds made with the shipped settings (`assets/similarity.sh`):

    python -m learngene condense --ancestry assets/lg_resnet_mini.safetensors --method cka --pd-epochs 10 \
        --pd-seeds 3 --threads 1 --out lg_resnet_mini-cka-3seeds.json

(`docs/lg_resnet_mini-cka-3seeds.json`, the one in docs/results.md, was made so: 3 min on 2 CPU cores.)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench._common import (
    ROOT,
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    run_cli,
    section,
    setup,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.score_vs_gain", description=__doc__.split("\n\n")[0])
    p.add_argument("--assets", default=str(ROOT / "assets"), help="folder of the shipped ancestries (default: assets/)")
    p.add_argument("--similarity", action="append", default=[], metavar="PATH",
                   help="a saved condense result to add as a row of the shipped ancestry it was made from "
                        "(repeatable), e.g. one condensed over several pseudo-descendant seeds (--pd-seeds)")
    add_common_args(p, "score_vs_gain")
    return p.parse_args(argv)


def _ci(d: dict[str, Any]) -> str:
    return f"{100 * d['mean']:+.1f} ± {100 * (d.get('ci95') or 0):.1f}"


def _views(path: Path, sha256: str, extra: list[str]) -> dict[str, Any]:
    """The shipped results of the ancestry at `path` by view, then the saved results in `extra` made from
    it (same sha256), each named by its view and file name."""
    from learngene.condense import SimilarityResult
    from learngene.condense.shipped import shipped_similarity, view_of

    views: dict[str, Any] = dict(shipped_similarity(path, sha256))
    for file in extra:
        sim = SimilarityResult.load(file)
        if sim.ancestry.get("sha256") == sha256:
            views[f"{view_of(sim)} ({Path(file).name})"] = sim
    return views


def rows_for(path: Path, extra: list[str] = ()) -> tuple[list[list[Any]], dict[str, Any] | None]:
    from learngene.condense.select import layer_scores
    from learngene.condense.shipped import probe_path
    from learngene.descend.probe_report import (
        correlation_interval,
        interval_noise,
        seed_score_values,
        spearman,
    )
    from learngene.models import read_card
    from learngene.runlog import read_json

    probe = read_json(probe_path(path))
    if not isinstance(probe, dict):
        return [], None
    gains = [s["gain"]["mean"] for s in probe["single"]]
    rows = []
    for view, sim in _views(path, read_card(path).sha256, list(extra)).items():
        rule = sim.selection.get("rule", "row_max")
        scores = layer_scores(sim.array, rule)
        finite = [s for s in scores if s is not None]
        rho = spearman(scores, gains)
        seeds = seed_score_values(sim.extras, len(scores))
        band = correlation_interval(scores, probe, seed_scores=seeds) if rho is not None else None
        acc = sim.extras.get("pd_test_acc")
        rows.append([path.stem, view, rule, ",".join(map(str, sim.selected)),
                     f"{max(finite) - min(finite):.3f}" if finite else "-",
                     "-" if rho is None else f"{rho:+.2f}",
                     "-" if band is None else f"{band[0]:+.2f} to {band[1]:+.2f}", interval_noise(seeds),
                     "-" if acc is None else f"{100 * acc:.1f}%"])
    return rows, probe


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup(args)
    from learngene.models import shipped_checkpoints

    table, gains = [], []
    for path in shipped_checkpoints(args.assets):
        rows, probe = rows_for(path, args.similarity)
        if probe is None:
            print(f"{path.name}: no measured gains ({path.stem}.probe.json); skipped")
            continue
        table += rows
        s = probe["settings"]
        best = sorted(range(len(probe["single"])), key=lambda i: -probe["single"][i]["gain"]["mean"])
        gains.append([path.stem, f"{s['tasks']} x {s['n_way']}-way {s['k_shot']}-shot, {s['epochs']} epochs",
                      f"{100 * probe['accuracy']['baseline']['mean']:.1f}% (chance {100 * probe['chance']:.0f}%)",
                      _ci(probe["stem_gain"]),
                      " ".join(f"{i}:{_ci(probe['single'][i]['gain'])}" for i in range(len(probe["single"]))),
                      ",".join(map(str, best[:4])),
                      " ".join(f"{r['layer']}:{_ci(r['share'])}" for r in probe.get("leave_one_out") or []) or "-"])
    text = (md_table(["ancestry", "view", "score rule", "chose (top-4)", "score spread (max-min)",
                      "Spearman rho with gain", "95% interval", "interval resamples", "pseudo-descendant acc"], table)
            + "\n\n" + md_table(["ancestry", "probe", "baseline acc", "stem alone vs baseline (points)",
                                 "single-layer gain over stem alone, layer:points ± 95%", "largest gains",
                                 "leave-one-out share of the chosen set, layer:points"], gains)
            + "\n\n*Spearman rho*: rank correlation, over the ancestry's layers, of a view's layer scores with "
              "the measured gain of inheriting that layer alone (with the stem) over inheriting the stem alone; "
              "+1 = the view orders layers exactly as they help; the interval resamples the probe's tasks (bootstrap), "
              "and, for a result condensed over several pseudo-descendant seeds (`condense --pd-seeds N`), those "
              "seeds' layer scores too (*interval resamples* says which); one that spans 0 means the ranking is "
              "not told apart from chance. Views: `cka` (outputs), `cka-update` (what each "
              "layer adds), `auto` (Auto-LG), `gradient` (Heur-LG), `weights` (weight drift), each as shipped "
              "(`assets/similarity.sh`), and a view named with a file: a saved `condense` result given with "
              "`--similarity` (its settings are in the file); gains from `learngene probe` (`assets/reproduce.sh`).")
    print(text)
    finish(args, "probe", section("probe", "Which similarity to trust: layer scores vs measured gains", text,
                                  command_line("bench.score_vs_gain"), machine_info()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
