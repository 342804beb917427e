"""Demo speed: the Home page's one-click demo, timed from the click to its summary.

Starts the demo's exact jobs the way the app does (`app.logic.demo.train_spec` through
`app.logic.demo.interactive_manager`, in a fresh temporary runs folder): the train job with the `.selected`
layers of the ancestry's shipped linear-CKA result, or, for an ancestry without one, the demo's
condense job first and the train job when it is done. It polls the run folders and reports the
seconds from the start (the click) to the first curve point (the first epoch record in
`metrics.jsonl`) and to the summary (`outputs/summary.json` written), and the headline numbers.

`--beside-job` first starts a training job as a person would from the Train page (its default
settings, 3 tasks so that it outlasts the demo), waits until it trains, and measures the demo beside
it. `--save-reference` copies the finished run to `assets/demo/<stem>/`: the reference run the Home
page shows before anyone clicks.

    python -m bench.demo_speed --write-docs
    python -m bench.demo_speed --beside-job --write-docs
    python -m bench.demo_speed --ancestry assets/lg_resnet_mini.safetensors --save-reference
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    add_common_args,
    command_line,
    finish,
    machine_info,
    machine_text,
    md_table,
    run_cli,
    section,
    write_csv,
)

# The Train page's default settings (app/ui/forms.py TASK_DEFAULTS, not imported: it needs Streamlit),
# with 3 tasks so the job outlasts the demo.
BESIDE_TASK = {"n_way": 5, "k_shot": 10, "tasks": 3, "epochs": 40, "lr": 1e-3, "weight_decay": 0.05,
               "batch_size": 10, "optimizer": "adamw", "seed": 0, "device": "cpu", "target_acc": 0.6}
BUDGET_S = {False: 60.0, True: 90.0}  # click to summary, quiet / beside another training job
QUICK_TRAIN = {"epochs": 1, "test_per_class": 5}
QUICK_CONDENSE = {"images": 64, "pd_epochs": 1}
POLL_S = 0.2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from app.shared.config import default_ancestry

    p = argparse.ArgumentParser(prog="python -m bench.demo_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", default=None, help=f"ancestry checkpoint (default: {default_ancestry()})")
    p.add_argument("--beside-job", action="store_true",
                   help="measure the demo beside a training job started first, as from the Train page")
    p.add_argument("--repeat", type=int, default=1, help="demo runs measured one after another (default: 1)")
    p.add_argument("--save-reference", action="store_true",
                   help="copy the (last) finished demo run to <assets>/demo/<stem>/ as the Home page's reference run")
    p.add_argument("--keep-runs", action="store_true", help="keep the run folders (under --out/runs)")
    p.add_argument("--timeout", type=float, default=600, help="give up on a run after this many seconds")
    add_common_args(p, "demo_speed")
    p.set_defaults(device="cpu")
    args = p.parse_args(argv)
    if args.device != "cpu":
        p.error("the demo trains on the CPU, as in the app (--device cpu)")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.ancestry = Path(args.ancestry or default_ancestry())
    return args


def _wait(mgr: Any, run_id: str, timeout: float, t0: float, marks: dict[str, float | None] | None = None) -> Any:
    """Poll a run until it ends; record in `marks` the seconds since `t0` of the first epoch record
    ("first_point") and of outputs/summary.json appearing ("summary")."""
    offset, deadline = 0, time.perf_counter() + timeout
    marks = {} if marks is None else marks
    summary = mgr.run_dir(run_id) / "outputs" / "summary.json"
    while True:
        info = mgr.get(run_id)
        now = time.perf_counter() - t0
        if marks.get("first_point") is None and "first_point" in marks:
            records, offset = mgr.read_metrics(run_id, offset)
            if any(r.get("kind") == "epoch" for r in records):
                marks["first_point"] = now
        if marks.get("summary") is None and "summary" in marks and summary.is_file():
            marks["summary"] = now
        if not info.live:
            return info
        if time.perf_counter() > deadline:
            mgr.cancel(run_id)
            return mgr.wait(run_id, timeout=30)
        time.sleep(POLL_S)


def demo_layers(args: argparse.Namespace, runs: Path, t0: float) -> tuple[list[int], str, float | None]:
    """(layers, similarity id, condense seconds): the shipped CKA result's, else a condense job's as in the app."""
    from app.logic import demo
    from learngene.condense import SimilarityResult
    from learngene.models import read_card

    shipped = demo.shipped_result(args.ancestry, read_card(args.ancestry).sha256)
    if shipped is not None:
        return list(shipped.selected), demo.shipped_run_id(), None
    from learngene.inherit.choose import load_ancestry
    from learngene.models import layer_view

    n_layers = len(layer_view(load_ancestry(args.ancestry)[0]))
    mgr = demo.interactive_manager(str(runs))
    run_id = mgr.start(demo.condense_spec(args.ancestry, n_layers, QUICK_CONDENSE if args.quick else None))
    info = _wait(mgr, run_id, args.timeout, t0)
    if info.state != "done":
        raise SystemExit(f"the demo's condense run {info.state}: {info.reason}\n{info.log_tail or ''}")
    sim = SimilarityResult.load(mgr.run_dir(run_id) / "outputs" / "similarity.json")
    return list(sim.selected), run_id, time.perf_counter() - t0


def start_beside_job(args: argparse.Namespace, runs: Path) -> tuple[Any, str]:
    """A person's training job (the Train page's defaults, the shipped CKA layers or the first half)
    through the app's default manager; returns once it has written its first epoch."""
    from app.logic.commands import train_argv
    from app.logic.demo import DEMO_RECIPE, shipped_result
    from learngene.jobs import JobManager, JobSpec
    from learngene.models import read_card

    shipped = shipped_result(args.ancestry, read_card(args.ancestry).sha256)
    layers = list(shipped.selected) if shipped is not None else [0, 1]
    mgr = JobManager(runs)  # as `app.person.resources.jobs()`: the default CPU slots
    run_id = mgr.start(JobSpec(argv=train_argv(args.ancestry, layers, DEMO_RECIPE, BESIDE_TASK), kind="train",
                               name="a person's train run"))
    deadline, offset = time.perf_counter() + args.timeout, 0
    while time.perf_counter() < deadline:
        records, offset = mgr.read_metrics(run_id, offset)
        if any(r.get("kind") == "epoch" for r in records):
            return mgr, run_id
        info = mgr.get(run_id)
        if not info.live:
            raise SystemExit(f"the job beside the demo {info.state} before training: {info.reason}")
        time.sleep(POLL_S)
    raise SystemExit("the job beside the demo did not start training in time")


def measure_once(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    """One demo from the click to its summary (beside a training job with --beside-job)."""
    from app.logic import demo
    from learngene.runlog import read_json

    beside = start_beside_job(args, runs) if args.beside_job else None
    load_before = round(os.getloadavg()[0], 1)
    t0 = time.perf_counter()  # the click
    layers, similarity, condense_s = demo_layers(args, runs, t0)
    extra = {**(QUICK_TRAIN if args.quick else {}), **({"threads": args.threads} if args.threads else {})}
    spec = demo.train_spec(args.ancestry, layers, similarity, extra)
    mgr = demo.interactive_manager(str(runs))
    marks: dict[str, float | None] = {"first_point": None, "summary": None}
    run_id = mgr.start(spec)
    info = _wait(mgr, run_id, args.timeout, t0, marks)
    beside_live = None
    if beside is not None:
        bmgr, bid = beside
        beside_live = bmgr.get(bid).live
        bmgr.cancel(bid)
        bmgr.wait(bid, timeout=30)
    out = read_json(mgr.run_dir(run_id) / "outputs" / "summary.json") or {}
    return {"run_id": run_id, "run_dir": str(mgr.run_dir(run_id)), "state": info.state, "layers": layers,
            "similarity": similarity, "condense_s": condense_s, "first_point_s": marks["first_point"],
            "summary_s": marks["summary"], "worker_s": info.duration_s, "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 1), "beside_still_training": beside_live,
            "summary": out.get("summary"), "argv": spec.argv, "reason": info.reason, "log_tail": info.log_tail}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def save_reference(args: argparse.Namespace, res: dict[str, Any], info: dict[str, Any], argv: list[str] | None) -> Path:
    from app.logic import demo
    from learngene.models import read_card

    meta = {"recorded": info["date"].split()[0], "machine": f"a {info['cores']}-core {info['cpu']} CPU",
            "machine_line": machine_text(info), "load_avg_before": res["load_before"],
            "beside_job": bool(args.beside_job), "seconds_to_first_point": res["first_point_s"],
            "seconds_to_summary": res["summary_s"], "condense_seconds": res["condense_s"], "layers": res["layers"],
            "similarity": res["similarity"], "ancestry": args.ancestry.name,
            "ancestry_sha256": read_card(args.ancestry).sha256, "argv": res["argv"],
            "command": command_line("bench.demo_speed", argv), "headline": demo.headline_text(res["summary"])}
    return demo.save_reference(res["run_dir"], args.ancestry, meta)


def report(args: argparse.Namespace, results: list[dict[str, Any]], info: dict[str, Any],
           argv: list[str] | None) -> None:
    """Print the table, write the CSV and the docs section `demo-cpu-<stem>[-beside]`."""
    from app.logic import demo

    mode = "beside a training job" if args.beside_job else "alone"
    budget = BUDGET_S[args.beside_job]
    rows = [[i + 1, r["state"], ",".join(map(str, r["layers"])), r["similarity"], _s(r["condense_s"]),
             _s(r["first_point_s"]),
             _s(r["summary_s"]), "yes" if (r["summary_s"] or 1e9) <= budget else "NO",
             f"{r['load_before']} / {r['load_after']}",
             "-" if r["beside_still_training"] is None else ("yes" if r["beside_still_training"] else "no"),
             demo.headline_text(r["summary"]) if r["summary"] else "-"] for i, r in enumerate(results)]
    headers = ["run", "state", "layers", "from", "s condensing", "s to 1st curve point", "s to summary", f"within {budget:.0f} s",
               "load avg before / after", "other job training throughout", "headline"]
    table = md_table(headers, rows)
    print("\n" + table)
    key = f"demo-cpu-{args.ancestry.stem}" + ("-beside" if args.beside_job else "")
    write_csv(f"{args.out}/{key}.csv",
              [{k: v for k, v in r.items() if k not in ("summary", "log_tail", "argv")} | info for r in results])
    load = max(r["load_before"] for r in results)
    beside = "; it holds little of the job beside the demo, which had started seconds before" if args.beside_job else ""
    note = (f"\n\n*The machine was loaded by other processes at the start* (1-minute load average {load}{beside})."
            if load >= 0.5 else "")
    body = (f"`{args.ancestry.name}`; the demo's train job as the Home page starts it (`app.logic.demo.train_spec`, "
            f"{demo.DEMO_TRAIN['tasks']} tasks x 2 models x {demo.DEMO_TRAIN['epochs']} epochs, "
            f"{demo.DEMO_TRAIN['n_way']}-way {demo.DEMO_TRAIN['k_shot']}-shot, batch {demo.DEMO_TRAIN['batch_size']}, "
            f"{demo.DEMO_TRAIN['test_per_class']} test images per class, 1 torch thread, target = the baseline's "
            f"final accuracy){'; quick settings' if args.quick else ''}, "
            + ("beside a training job started first with the Train page's defaults (3 tasks x 40 epochs, waited "
               "for its first epoch)" if args.beside_job else "alone")
            + ". Seconds from the click (the start of the first job: the train job with shipped layers, else the "
              "condense job) to the end of condensing, the first curve point and the summary file; "
              f"the budget is {budget:.0f} s.\n\n{table}{note}")
    title = f"Home demo: click to summary ({args.ancestry.stem}, {mode})"
    finish(args, key, section(key, title, body, command_line("bench.demo_speed", argv), info))


def main(argv: list[str] | None = None) -> int:
    from app.logic import demo
    from learngene.descend.summary import format_pair_summary

    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads or 1)  # the machine line then names the demo worker's threads
    runs_root = Path(args.out) / "runs" if args.keep_runs else Path(tempfile.mkdtemp(prefix="demo-speed-"))
    mode = "beside a training job" if args.beside_job else "alone"
    print(f"{args.ancestry}: the demo {mode}; settings {demo.DEMO_TRAIN}")
    results = []
    try:
        for i in range(args.repeat):
            runs = runs_root / f"rep{i}"
            res = measure_once(args, runs)
            results.append(res)
            print(f"  run {i + 1}: {res['state']}; first curve point {_s(res['first_point_s'])} s, summary "
                  f"{_s(res['summary_s'])} s after the click (condense {_s(res['condense_s'])} s); load average "
                  f"{res['load_before']} -> {res['load_after']}"
                  + ("" if res["beside_still_training"] is None else
                     f"; the other job still training at the end: {res['beside_still_training']}"))
            if res["summary"]:
                print(format_pair_summary(res["summary"]))
                print(demo.headline_text(res["summary"]))
            else:
                print(f"  no summary: {res['reason']}\n{res['log_tail'] or ''}")
        info = machine_info("cpu")
        ok = [r for r in results if r["state"] == "done" and r["summary_s"] is not None]
        if args.save_reference and ok:
            print(f"reference run saved to {save_reference(args, ok[-1], info, argv)}")
    finally:
        if not args.keep_runs:
            shutil.rmtree(runs_root, ignore_errors=True)
    report(args, results, info, argv)
    return 0 if ok and len(ok) == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
