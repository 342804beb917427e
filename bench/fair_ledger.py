"""The fair ledger of `learngene train` for each shipped ancestry: what each arm cost (epochs, images
seen, FLOPs counted by torch's FlopCounterMode, wall time), a converged baseline (random init trained to
its plateau, at most `--strong-baseline` times the epochs) and the ancestry's own training cost spread
over 1, 10 and 100 descendants.

It runs the command a user runs (`python -m learngene train ... --strong-baseline F`) in this process,
with a run folder, and reads back the summary it wrote.

    python -m bench.fair_ledger --threads 1 --write-docs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench._common import ROOT, add_common_args, command_line, finish, machine_info, run_cli, section, setup

STEMS = ("lg_vit_tiny", "lg_resnet_mini")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fair_ledger", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=3, help="(default: 3)")
    p.add_argument("--k-shot", type=int, default=10, help="(default: 10)")
    p.add_argument("--epochs", type=int, default=40, help="(default: 40, the train command's)")
    p.add_argument("--test-per-class", type=int, default=100, help="test images per class (default: 100)")
    p.add_argument("--strong-baseline", type=int, default=5, help="cap of the converged baseline, x epochs (default: 5)")
    p.add_argument("--from-runs", action="store_true",
                   help="train nothing: the tables again from the run folders a previous run left in --out")
    add_common_args(p, "fair_ledger")
    return p.parse_args(argv)


def run_train(stem: str, args: argparse.Namespace) -> dict[str, Any]:
    from learngene.cli import main as cli_main

    run_dir = Path(args.out) / stem
    argv = ["train", "--ancestry", str(ROOT / "assets" / f"{stem}.safetensors"),
            "--similarity", str(ROOT / "assets" / "similarity" / f"{stem}-cka.json"),
            "--tasks", str(args.tasks), "--k-shot", str(args.k_shot), "--epochs", str(args.epochs),
            "--strong-baseline", str(args.strong_baseline), "--threads", str(args.threads or 1),
            "--device", args.device, "--run-dir", str(run_dir), "--test-per-class", str(args.test_per_class)]
    if args.quick:
        argv += ["--images-per-class", "40"]
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(f"learngene train exited with {code}")
    return json.loads((run_dir / "outputs" / "summary.json").read_text())["summary"]


def read_run(stem: str, args: argparse.Namespace) -> dict[str, Any]:
    return json.loads((Path(args.out) / stem / "outputs" / "summary.json").read_text())["summary"]


def markdown(stem: str, s: dict[str, Any]) -> str:
    from learngene.descend.compare import STOPS
    from learngene.descend.ledger import fmt_flops
    from learngene.descend.stats import fmt_ci

    def ci(acc: dict[str, Any]) -> str:
        half = acc.get("ci95")
        return fmt_ci(acc["mean"], float("nan") if half is None else half)

    accs = {"learngene": s["learngene"]["final_acc"], "baseline": s["baseline"]["final_acc"]}
    strong = s.get("strong_baseline") or {}
    led = s["ledger"]
    lines = [f"**{stem}**: learngene {ci(accs['learngene'])}%, baseline {ci(accs['baseline'])}% (baseline "
             f"{s.get('baseline_line', '')}); "
             f"converged baseline {100 * (strong.get('final_acc') or float('nan')):.1f}% after "
             f"{', '.join(str(e) for e in strong.get('epochs_trained') or [])} epochs "
             f"(cap {strong.get('max_epochs', 'n/a')}; {', '.join(STOPS.get(x, x) for x in strong.get('stopped') or [])}); "
             f"it reached the "
             f"learngene's final accuracy on {strong.get('reached', 0)}/{strong.get('tasks', 0)} task(s)"
             + (f", after {strong['median_epoch_reaching_learngene']:g} epochs (median)"
                if strong.get("median_epoch_reaching_learngene") is not None else ""), "",
             "| arm | runs | epochs | images seen | FLOPs | wall s |", "|---|---:|---:|---:|---:|---:|"]
    for a in led["arms"]:
        lines.append(f"| {a['arm']} | {a['runs']} | {a['epochs']} | {a['images_seen']:,} | {fmt_flops(a['flops'])} | "
                     f"{a['seconds']:.1f} |")
    anc = led.get("ancestry")
    if anc:
        lines += ["", f"The ancestry's own training: {anc['epochs']} epochs, {anc['images_seen']:,} images seen, "
                  f"{fmt_flops(anc['flops'])}, {anc.get('seconds') or float('nan'):.0f} s"
                  + (" (derived from its card: epochs x training images x FLOPs per image)"
                     if anc.get("derived_from_card") else ""), "",
                  "| descendants sharing the ancestry | FLOPs per learngene descendant | seconds per descendant |",
                  "|---:|---:|---:|"]
        for row in led.get("amortised", []):
            lines.append(f"| {row['descendants']} | {fmt_flops(row['flops'])} | {row['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    args.device = device.type
    tables = [markdown(stem, read_run(stem, args) if args.from_runs else run_train(stem, args)) for stem in STEMS]
    body = (f"`learngene train`, {args.tasks} novel 5-way {args.k_shot}-shot tasks ({args.test_per_class} test images per "
            f"class, evaluated every epoch), {args.epochs} epochs (the command's defaults: lr 1e-3, wd 0.05, batch 10), "
            f"the shipped CKA layers; `--strong-baseline {args.strong_baseline}`: "
            "random init trained in rounds of the same epochs until a round no longer improves its best held-out "
            f"accuracy by a point (at most {args.strong_baseline}x). FLOPs are those of the training steps and the "
            "evaluations, counted by torch's FlopCounterMode (matrix products, convolutions, attention). The "
            "learngene descendant's account carries the ancestry's training, spread over the descendants it serves. "
            "Wall times were measured on a machine shared with other jobs: read them as rough; the FLOPs are exact."
            "\n\n" + "\n\n".join(tables))
    if args.from_runs:
        body += "\n\nThe runs were made by the same command without `--from-runs` (it trains them)."
    print(body)
    finish(args, "fair_ledger", section("fair_ledger", "A fair ledger: what each arm cost", body,
                                        command_line("bench.fair_ledger", argv), machine_info(device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
