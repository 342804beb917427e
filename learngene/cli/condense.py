"""`python -m learngene condense`: similarity matrix of an ancestry and its learngene layers."""

from __future__ import annotations

import argparse
from pathlib import Path

from learngene.cli._common import add_data, add_run_dir, output_dir, output_file
from learngene.cli.train import add_force_option, add_threads_option, gate, set_cpu_threads
from learngene.reporting import Reporter

NAME = "condense"
HELP = ("compute an ancestry × pseudo-descendant similarity matrix (auto, cka, gradient, weights) and "
        "choose the learngene layers")

DEFAULT_ANCESTRY = "lg_vit_tiny.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ancestry", default=None,
                   help=f"ancestry checkpoint (.safetensors with its .json card); default: the shipped "
                        f"assets/{DEFAULT_ANCESTRY}")
    p.add_argument("--method", choices=["auto", "cka", "gradient", "weights"], default="cka",
                   help="auto: Auto-LG meta-learned matching weights; cka: linear CKA; gradient: Heur-LG "
                        "gradient activity (layer × epoch); weights: weight drift (default: cka)")
    g = p.add_argument_group("selection")
    g.add_argument("--select", default="top-k",
                   help="top-k (best --k layers by score; also top-3), heur (last 3), auto-paper (Auto-LG's "
                        "published choice), front-K, middle-K, last-K (default: top-k)")
    g.add_argument("--k", type=int, default=None, help="layers for top-k (default: half the ancestry's layers)")
    g.add_argument("--contiguous", action="store_true", help="top-k as one contiguous run of layers")
    g.add_argument("--rule", choices=["row_max", "row_mean", "diagonal"], default=None,
                   help="how a matrix row becomes a layer score (default: cka/weights row_max, "
                        "auto/gradient row_mean)")
    s = p.add_argument_group("similarity")
    s.add_argument("--cka-of", choices=["output", "update"], default="output",
                   help="cka: compare each layer's output (for a ViT the residual stream) or its update, what "
                        "the layer adds to its input (default: output)")
    s.add_argument("--tokens", choices=["cls", "mean", "flatten"], default="mean",
                   help="ViT token treatment for CKA (default: mean of the patch tokens)")
    s.add_argument("--maps", choices=["flatten", "gap"], default="flatten",
                   help="CNN feature-map treatment for CKA (default: flatten)")
    s.add_argument("--images", type=int, default=512,
                   help="held-out open-world images to measure on (default: 512)")
    s.add_argument("--pd-epochs", type=int, default=None,
                   help="training epochs of the method: pseudo-descendant (cka, auto; default: an adaptive budget whose "
                        "rounds are 4 epochs for a ViT, 2 for a CNN, until it has clearly learned, at most "
                        "pd_max_epochs / pd_max_seconds; a number given here is a fixed budget), ancestry fine-tuning (weights; default 3), epochs per task (gradient; "
                        "default 4)")
    s.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="any other CondenseConfig field, e.g. --set tasks=4 --set lam=1.0 (repeatable)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = CUDA when present")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.add_argument("--no-pd-cache", dest="pd_cache", action="store_false",
                   help="cka: always train the pseudo-descendant (default: reuse one trained with the same "
                        "ancestry, data and pseudo-descendant settings, shipped or cached)")
    s.add_argument("--save-pd", default=None, metavar="PATH",
                   help="cka: also save the pseudo-descendant used to PATH (.safetensors + card)")
    s.add_argument("--pd-seeds", type=int, default=1, metavar="N",
                   help="cka: train N pseudo-descendants (seeds --seed, --seed+1, ...): the matrix is their mean, each "
                        "layer's score gets a 95%% interval and a count of how often it was selected (default: 1)")
    add_threads_option(s)
    add_force_option(p)
    p.add_argument("--out", default=None,
                   help="result JSON; default: <run>/outputs/similarity.json in a job, else ./similarity.json")
    add_data(p, images_per_class=True)
    add_run_dir(p)


def _ancestry_path(arg: str | None) -> Path:
    from learngene.errors import CheckpointError
    from learngene.models import shipped_checkpoints

    if arg:
        return Path(arg)
    for path in shipped_checkpoints():
        if path.name == DEFAULT_ANCESTRY:
            return path
    raise CheckpointError(f"the default ancestry assets/{DEFAULT_ANCESTRY} is missing; pass --ancestry PATH or "
                          f"train one with `python -m learngene accumulate --out assets/{DEFAULT_ANCESTRY}`")


def _config(args: argparse.Namespace):
    from learngene.cli._common import parse_overrides
    from learngene.condense import CondenseConfig

    fields = {"tokens": args.tokens, "maps": args.maps, "images": args.images, "device": args.device,
              "seed": args.seed, "cka_of": args.cka_of, "pd_seeds": args.pd_seeds}
    if args.pd_epochs is not None:
        key = {"cka": "pd_epochs", "auto": "pd_epochs", "weights": "ft_epochs", "gradient": "task_epochs"}
        fields[key[args.method]] = args.pd_epochs
    return CondenseConfig.from_dict({**fields, **parse_overrides(args.settings)})


def _print_pseudo_descendant(result) -> None:
    from learngene.condense.pseudo import pd_warning

    ex = result.extras
    if ex.get("pd_test_acc") is None:
        return
    source = ex.get("pd_source", "trained")
    where = "trained now" if source == "trained" else f"reused from {source}"
    state = ex.get("pd_line") or f"learned: {ex['pd_learned']}"
    budget = ex.get("pd_budget") or {}
    did = f"; {budget['line']}" if budget.get("line") and source == "trained" else ""
    print(f"pseudo-descendant: {ex['pd_test_acc']:.1%} held-out accuracy on {round(1 / ex['pd_chance'])} open-world "
          f"classes (chance {ex['pd_chance']:.1%}; {state}){did}; {where}")
    warning = pd_warning(ex)
    if warning:
        print(f"WARNING: {warning}")


def format_seed_scores(result) -> str:
    """Per-layer score over the pseudo-descendant seeds: mean ± 95% interval and how often selected."""
    ss = result.extras["seed_scores"]
    lines = [f"layer scores over {ss['n']} pseudo-descendant seeds (mean ± 95% t-interval; selected in how many)"]
    for i, name in enumerate(result.row_names):
        half = ss["ci95"][i]
        lines.append(f"  {i:>3} {name:<16} {ss['mean'][i]:.4f} ± {half:.4f}  selected {ss['selected_count'][i]}/{ss['n']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from learngene.cli._common import load_data
    from learngene.condense import condense, plan_units
    from learngene.condense.pdcache import PDCache
    from learngene.data.binding import bound_of_card
    from learngene.models import family_of, load_checkpoint

    if args.out is not None:  # checked before any work; the default lands in the run folder or here
        output_file(args.out, "--out")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    cfg = _config(args)
    set_cpu_threads(args, cfg.device)
    path = _ancestry_path(args.ancestry)
    ancestry, card = load_checkpoint(path)
    ds = load_data(args, bound_of_card(card, path))
    quality = gate(card, path, args, ancestry, ds)
    cfg = cfg.replace(flip=bool(ds.meta["flip"]))
    cache = PDCache.for_ancestry(path, card.sha256, use=args.pd_cache, save_to=args.save_pd)
    total = plan_units(args.method, cfg, family_of(ancestry))
    with Reporter(args.run_dir, total=total, desc=f"condense {args.method}") as rep:
        result = condense(ancestry, ds, args.method, config=cfg, select=args.select, k=args.k,
                          contiguous=args.contiguous, rule=args.rule, reporter=rep, ancestry_path=path,
                          ancestry_sha256=card.sha256, pd_cache=cache)
        result.extras["ancestry_quality"] = quality
        out = args.out or (rep.outputs_dir / "similarity.json" if rep.outputs_dir else "similarity.json")
        result.save(out)
        rep.metric({"kind": "result", "similarity": str(out), "selected": result.selected,
                    "method": result.method, "elapsed_s": result.elapsed_s})
    features = f", {result.settings['features']}" if "features" in result.settings else ""
    print(f"{result.method} similarity of {path.name} ({len(result.row_names)} × {len(result.col_names)}"
          f"{features}) in {result.elapsed_s:.1f} s")
    columns = {"gradient": "epochs of the task sequence (1 - active gradient fraction)",
               "weights": "cosine of the layer's weights before/after fine-tuning"}
    print(f"rows: ancestry layers; columns: {columns.get(result.method, 'pseudo-descendant layers')}")
    _print_pseudo_descendant(result)
    print(result.summary())
    if result.method == "weights":
        rel = ", ".join(f"{v:.4f}" for v in result.extras["relative_change"])
        print(f"relative weight change per layer: {rel}")
    if "seed_scores" in result.extras:
        print(format_seed_scores(result))
    sel = result.selection
    names = ", ".join(result.selected_names)
    print(f"selected ({sel['how']}, rule {sel['rule']}): {result.selected} = {names}")
    print(f"saved {out}")
    return 0
