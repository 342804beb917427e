"""Condensing speed: the Similarity page's default CKA condense, click to heatmap, alone and beside a job.

For each shipped ancestry, the default CKA condense is started exactly as the Similarity page starts
it (the same argv from `app.logic.commands.condense_argv`, through the same job manager with one CPU slot
more than the default, `app.logic.demo.interactive_manager`), with an empty
pseudo-descendant cache, so the pseudo-descendant is trained as for an uploaded ancestry. Timed:
from the job's start to its `similarity.json` (what the page waits for; the page polls every 1.5 s
on top). Measured twice: on its own, and beside a training job (the Train page's default
learngene-vs-baseline run, started first, as when a person explores while a run trains). Then:

- recompute with other CKA settings (layer updates, class token...): the cached pseudo-descendant
  is reused, so this costs the CKA alone;
- the pseudo-descendant's held-out accuracy against chance (1 / open-world classes);
- agreement with the slow settings: the layers the fast default picks (seeds 0..S-1) against those
  of the shipped result (`assets/similarity/<stem>-cka.json`, a pseudo-descendant trained 10-30
  epochs), as identical top-k sets and mean overlap, for CKA of outputs and of updates.

    python -m bench.condense_speed --write-docs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
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

BESIDE_TASK = {"n_way": 5, "k_shot": 10, "tasks": 10, "epochs": 40, "device": "cpu"}  # outlasts the condense


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.condense_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", action="append", default=None,
                   help="ancestry checkpoint (repeatable; default: the shipped ones)")
    p.add_argument("--seeds", type=int, default=3, help="fast-default seeds compared with the slow result (default: 3)")
    add_common_args(p, "condense_speed")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = 1
    return args


def _fresh_cache() -> Path:
    """A cache folder whose generated data sets are the user's (no regeneration) but with no pseudo-descendants."""
    from learngene.data.shapes import cache_dir

    folder = Path(tempfile.mkdtemp(prefix="lg-bench-cache-"))
    data = cache_dir()
    if data.is_dir():
        (folder / data.name).symlink_to(data, target_is_directory=True)
    return folder


def _timed_job(mgr: Any, argv: list[str], name: str) -> dict[str, Any]:
    from learngene.jobs import JobSpec

    t0 = time.perf_counter()
    run_id = mgr.start(JobSpec(argv=argv, kind="condense", name=name))
    info = mgr.wait(run_id, timeout=900)
    seconds = time.perf_counter() - t0
    if info.state != "done":
        raise RuntimeError(f"{name}: the condense run {run_id} ended {info.state}: {info.reason}")
    from learngene.condense import SimilarityResult

    sim = SimilarityResult.load(mgr.run_dir(run_id) / "outputs" / "similarity.json")
    return {"seconds": seconds, "sim": sim, "run": run_id}


def _overlap(a: list[int], b: list[int]) -> float:
    return len(set(a) & set(b)) / max(1, len(b))


def measure(path: Path, mgr: Any, trainer: Any, seeds: int, quick: bool) -> dict[str, Any]:
    """`mgr` starts the condense jobs as the Similarity page does (one CPU slot more than the default),
    `trainer` the training job as the Train page does (the default manager of the same runs folder)."""
    from app.logic.commands import condense_argv, train_argv
    from learngene.condense.shipped import shipped_similarity
    from learngene.jobs import JobSpec
    from learngene.models import layer_view, load_checkpoint

    model, card = load_checkpoint(path)
    k = min(4, len(layer_view(model)))  # the page's default top-k
    page = {"device": "cpu"}  # what the Similarity page passes with its defaults
    tiny = {"images": 64, "probe_batch": 32, "pd_epochs": 1, "train_per_class": 20} if quick else {}
    out: dict[str, Any] = {"ancestry": path.name}
    alone = _timed_job(mgr, condense_argv(path, "cka", k, {**page, **tiny}), "bench · condense alone")
    out["alone_s"], sim = alone["seconds"], alone["sim"]
    out["pd_source"] = sim.extras.get("pd_source")
    out["pd_acc"], out["chance"], out["learned"] = (sim.extras.get("pd_test_acc"), sim.extras.get("pd_chance"),
                                                    sim.extras.get("pd_learned"))
    again = _timed_job(mgr, condense_argv(path, "cka", k, {**page, **tiny, "cka_of": "update"}),
                       "bench · recompute (updates)")
    out["recompute_s"], out["recompute_source"] = again["seconds"], again["sim"].extras.get("pd_source")
    # beside a training job: a fresh cache again, so the pseudo-descendant is trained
    os.environ["LEARNGENE_CACHE"] = str(_fresh_cache())
    task = {**BESIDE_TASK, **({"tasks": 1, "epochs": 30} if quick else {})}
    train = trainer.start(JobSpec(argv=train_argv(path, list(range(k)), {"placement": "original", "stem": "inherit"},
                                              task), kind="train", name="bench · a training job"))
    try:
        while trainer.get(train).state != "running":
            time.sleep(0.2)
        time.sleep(3)  # past its start-up, into training
        beside = _timed_job(mgr, condense_argv(path, "cka", k, {**page, **tiny}), "bench · condense beside a job")
        out["beside_s"], out["train_still_running"] = beside["seconds"], trainer.get(train).live
    finally:
        trainer.cancel(train)
        trainer.wait(train, timeout=60)
    # agreement of the fast default with the slow (shipped) settings
    slow = shipped_similarity(path, card.sha256)
    fast = {"cka": [alone["sim"]], "cka-update": [again["sim"]]}
    for seed in range(1, seeds):
        for view, extra in (("cka", {}), ("cka-update", {"cka_of": "update"})):
            fast[view].append(_timed_job(mgr, condense_argv(path, "cka", k, {**page, **tiny, **extra, "seed": seed}),
                                         f"bench · seed {seed}")["sim"])
    for view in ("cka", "cka-update"):
        ref = slow.get(view)
        if ref is None:
            out[f"agree_{view}"] = None
            continue
        sels = [s.selected for s in fast[view]]
        out[f"agree_{view}"] = {"same": sum(sorted(s) == sorted(ref.selected) for s in sels), "of": len(sels),
                                "overlap": sum(_overlap(s, ref.selected) for s in sels) / len(sels),
                                "slow": ref.selected, "fast": sels,
                                "slow_pd_acc": ref.extras.get("pd_test_acc")}
    return out


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def report(rows: list[dict[str, Any]]) -> str:
    table = [["ancestry", "alone (s)", "beside a training job (s)", "job still training at the end",
              "recompute, other CKA settings (s)", "pseudo-descendant acc", "chance", "learned"]]
    for r in rows:
        table.append([r["ancestry"], f"{r['alone_s']:.1f}", f"{r['beside_s']:.1f}",
                      "yes" if r["train_still_running"] else "no", f"{r['recompute_s']:.1f}",
                      _pct(r["pd_acc"]), _pct(r["chance"]), r["learned"]])
    agree = [["ancestry", "view", "slow settings chose", "slow pseudo-descendant acc", "fast default chose (per seed)",
              "identical sets", "mean overlap"]]
    for r in rows:
        for view in ("cka", "cka-update"):
            a = r.get(f"agree_{view}")
            if a is None:
                continue
            agree.append([r["ancestry"], view, ",".join(map(str, a["slow"])), _pct(a["slow_pd_acc"]),
                          " / ".join(",".join(map(str, s)) for s in a["fast"]), f"{a['same']}/{a['of']}",
                          f"{100 * a['overlap']:.0f}%"])
    return (md_table(table[0], table[1:]) + "\n\nSeconds from the job's start to its `similarity.json` (the page polls every 1.5 s "
            "on top), default CKA settings as the Similarity page starts them (one torch thread), with an empty "
            "pseudo-descendant cache; *recompute*: CKA of layer updates right after, reusing the cached "
            "pseudo-descendant. *Beside a training job*: the Train page's default learngene-vs-baseline run "
            "trains at the same time. Pseudo-descendant accuracy: held-out open-world images; *learned* = "
            "clearly (>= 2x chance), barely, no.\n\nHow often the fast default picks the layers of the slow "
            "settings (the shipped result, whose pseudo-descendant trained 10-30 epochs):\n\n" + md_table(agree[0], agree[1:]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup(args)
    from learngene.jobs import JobManager
    from learngene.models import shipped_checkpoints

    paths = [Path(p) for p in args.ancestry] if args.ancestry else shipped_checkpoints(ROOT / "assets")
    from app.logic.demo import interactive_manager

    runs = Path(tempfile.mkdtemp(prefix="lg-bench-runs-"))
    mgr, trainer = interactive_manager(str(runs)), JobManager(runs)
    rows = []
    for path in paths:
        os.environ["LEARNGENE_CACHE"] = str(_fresh_cache())
        rows.append(measure(path, mgr, trainer, args.seeds, args.quick))
        r = rows[-1]
        print(f"{path.name}: alone {r['alone_s']:.1f} s, beside a job {r['beside_s']:.1f} s, recompute "
              f"{r['recompute_s']:.1f} s; pseudo-descendant {_pct(r['pd_acc'])} (chance {_pct(r['chance'])})",
              flush=True)
    text = report(rows)
    print(text)
    finish(args, "condense-cpu", section("condense-cpu", "Condensing speed: click to heatmap (cpu)", text,
                                         command_line("bench.condense_speed"), machine_info()))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
