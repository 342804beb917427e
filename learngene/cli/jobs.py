"""`python -m learngene jobs ...`: the CLI twin of the dashboard's job controls.

    jobs list [--state S] [--kind K] [--group G]
    jobs show RUN_ID
    jobs start [--device cpu|cuda] [--name N] [--kind K] [--group G] [--role R] -- COMMAND ARGS...
    jobs cancel RUN_ID [--wait]
    jobs tail RUN_ID [-n N] [--follow]
    jobs delete RUN_ID
    jobs annotate RUN_ID [--name N] [--tag T ...] [--untag T ...] [--note TEXT]
    jobs export [RUN_ID ...] [--group G] [--kind K] [--all] [--tensorboard DIR] [--mlflow DIR|URI]
    jobs forkserver start|stop|status [--wait S]

Jobs start warm (forked by the runs folder's fork server, started on demand) unless
$LEARNGENE_WARM_START is "0"; a job the server cannot serve starts cold.

The runs folder is `--runs-dir`, else `$LEARNGENE_RUNS_DIR`, else `runs`.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import sys
import time

from learngene.cli._common import existing_dir_or_missing, output_dir
from learngene.errors import ConfigError
from learngene.jobs import STATES, JobManager, JobSpec, RunInfo
from learngene.jobs.annotations import shown_name
from learngene.text import printable

NAME = "jobs"
HELP = "start, list, inspect, cancel and delete background runs"
RUNS_DIR_ENV = "LEARNGENE_RUNS_DIR"
_MAX_PARTIAL_LINE = 1 << 16  # `tail --follow` holds back at most this much of an unfinished line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", default=None, help=f"runs folder (default ${RUNS_DIR_ENV} or ./runs)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", default=argparse.SUPPRESS, help="runs folder")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    _add_run_actions(sub, common)
    _add_record_actions(sub, common)


def _add_run_actions(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """list, show, start, cancel, tail, delete."""
    p = sub.add_parser("list", parents=[common], help="list runs, newest first")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--kind")
    p.add_argument("--group")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("show", parents=[common], help="print one run's state as JSON")
    p.add_argument("run_id")

    p = sub.add_parser("start", parents=[common], help="start `python -m learngene ARGV...` in the background")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--name", default="")
    p.add_argument("--kind", default="", help="label (default: the command name)")
    p.add_argument("--group", default=None, help="comparison id")
    p.add_argument("--role", default=None, help="role in the comparison, e.g. learngene or baseline")
    p.add_argument("--no-run-dir", action="store_true", help="do not append --run-dir to the command")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")

    p = sub.add_parser("cancel", parents=[common], help="cancel a queued or running run")
    p.add_argument("run_id")
    p.add_argument("--wait", action="store_true", help="wait until it has stopped")

    p = sub.add_parser("tail", parents=[common], help="print the end of a run's log")
    p.add_argument("run_id")
    p.add_argument("-n", "--lines", type=int, default=40)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")

    p = sub.add_parser("delete", parents=[common], help="delete a finished run's folder")
    p.add_argument("run_id")



def _add_record_actions(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """annotate, export, forkserver."""
    p = sub.add_parser("annotate", parents=[common],
                       help="rename, tag or note a run (kept in its folder as annotations.json); prints them")
    p.add_argument("run_id")
    p.add_argument("--name", default=None, help="the name the run is shown with ('' = the name it started with)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="add a tag (repeatable)")
    p.add_argument("--untag", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)")
    p.add_argument("--note", default=None, help="a free-text note ('' = none)")

    p = sub.add_parser("export", parents=[common],
                       help="export runs (config as hyper-parameters, every curve as metrics) to TensorBoard event "
                            "files and/or an MLflow tracking store")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    p.add_argument("--group", default=None, help="also every run of this group (e.g. a study's runs)")
    p.add_argument("--kind", default=None, help="with --all: only runs of this kind")
    p.add_argument("--all", action="store_true", help="every finished run in the runs folder")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="write event files under DIR/<run id>/")
    p.add_argument("--mlflow", default=None, metavar="DIR|URI",
                   help="log into this MLflow tracking store: a folder (MLflow's file store) or a tracking URI")
    p.add_argument("--experiment", default="learngene-studio", help="MLflow experiment (default: learngene-studio)")

    p = sub.add_parser("forkserver", parents=[common],
                       help="start, stop or show the runs folder's fork server (jobs start warm through it)")
    p.add_argument("what", choices=("start", "stop", "status"))
    p.add_argument("--wait", type=float, default=60.0, metavar="S",
                   help="start: wait at most S seconds until it is ready (default 60; 0: do not wait)")


def _manager(args: argparse.Namespace) -> JobManager:
    """The manager of the runs folder, checked first: `start` needs a writable folder (created when
    missing), the other actions one that is readable or missing (a one-line error, not an OSError)."""
    path = args.runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs"
    option = "--runs-dir" if args.runs_dir else f"${RUNS_DIR_ENV}" if os.environ.get(RUNS_DIR_ENV) else "runs folder"
    check = output_dir if args.action == "start" or getattr(args, "what", "") == "start" else existing_dir_or_missing
    return JobManager(check(path, option))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _row(info: RunInfo) -> str:
    progress = ""
    if info.progress and info.progress.get("total"):
        progress = printable(f"{info.progress.get('done', 0)}/{info.progress['total']}", 9)
    return (  # the name is typed by someone: escapes in it must not reach the terminal
        f"{info.run_id:<40} {info.state:<10} {info.spec.device:<5} {_when(info.created_at):<20} "
        f"{progress:<9} {shown_name(info)}"
    )


def _list(mgr: JobManager, args: argparse.Namespace) -> int:
    runs = mgr.list(kind=args.kind, state=args.state, group=args.group)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2, default=str))
        return 0
    print(f"{'RUN ID':<40} {'STATE':<10} {'DEV':<5} {'CREATED':<20} {'PROGRESS':<9} NAME")
    for info in runs:
        print(_row(info))
    for info in runs:  # reported, never stopped here: only `jobs cancel` signals a worker
        if info.leftover_worker is not None:
            print(f"note: {info.run_id} {info.state}: {printable(info.reason)}", file=sys.stderr)
    return 0


def _start(mgr: JobManager, args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("nothing to run: use `jobs start [options] -- COMMAND ARGS...`")
    spec = JobSpec(
        argv=argv,
        kind=args.kind,
        device=args.device,
        name=args.name,
        group=args.group,
        role=args.role,
        pass_run_dir=not args.no_run_dir,
    )
    print(mgr.start(spec))
    return 0


def _log_text(text: str) -> str:
    """Log text safe for the terminal: escape sequences and controls removed, newlines and tabs kept
    (the worker's output is whatever the command, or a name or path it echoes, put there)."""
    return printable(text, keep_lines=True)


def _tail(mgr: JobManager, args: argparse.Namespace) -> int:
    print(_log_text(mgr.log_tail(args.run_id, args.lines)))
    if not args.follow:
        return 0
    path = mgr.run_dir(args.run_id) / "log.txt"
    offset = path.stat().st_size if path.exists() else 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character cut between reads
    pending = ""  # text after the last line break: an escape sequence may be cut there too
    while True:
        live = mgr.get(args.run_id).live
        if path.exists():
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            pending += decoder.decode(chunk, final=not live)
            cut = max(pending.rfind("\n"), pending.rfind("\r", 0, len(pending) - 1)) + 1  # "\r" may precede "\n"
            if not live or len(pending) - cut > _MAX_PARTIAL_LINE:
                cut = len(pending)
            sys.stdout.write(_log_text(pending[:cut]))
            sys.stdout.flush()
            pending = pending[cut:]
        if not live:
            return 0
        time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    mgr = _manager(args)
    if args.action == "list":
        return _list(mgr, args)
    if args.action == "start":
        return _start(mgr, args)
    if args.action == "tail":
        return _tail(mgr, args)
    if args.action == "show":
        print(json.dumps(mgr.get(args.run_id).to_dict(), indent=2, default=str))
    elif args.action == "cancel":
        info = mgr.cancel(args.run_id)
        if args.wait:
            info = mgr.wait(args.run_id)
        print(f"{info.run_id} {info.state}")
    elif args.action == "delete":
        mgr.delete(args.run_id)
        print(f"deleted {args.run_id}")
    elif args.action == "annotate":
        print(json.dumps(_annotate(mgr, args), indent=2))
    elif args.action == "export":
        _export(mgr, args)
    elif args.action == "forkserver":
        return _forkserver(mgr, args)
    return 0


def _forkserver(mgr: JobManager, args: argparse.Namespace) -> int:
    from learngene.jobs import warm

    if args.what == "start":
        mgr = JobManager(mgr.runs_dir, warm_start=True)  # asked for, whatever $LEARNGENE_WARM_START says
        if not mgr.warm_up():
            print("the fork server could not start; jobs start cold (see "
                  f"{warm.private_dir(mgr.runs_dir) / warm.LOG_NAME})", file=sys.stderr)
            return 1
        if args.wait > 0 and not warm.wait_until_ready(mgr.runs_dir, args.wait):
            print(f"the fork server is not ready after {args.wait:g} s", file=sys.stderr)
            return 1
    elif args.what == "stop":
        print("stopped" if warm.stop_server(mgr.runs_dir) else "no fork server was running")
        return 0
    state = warm.server_state(mgr.runs_dir)
    print(json.dumps(state or {"state": "not running"}, indent=2))
    return 0


def _export(mgr: JobManager, args: argparse.Namespace) -> None:
    from learngene.jobs.export import export_runs

    ids = list(args.run_ids)
    if args.group:
        ids += [i.run_id for i in mgr.list(group=args.group)]
    if args.all:
        ids += [i.run_id for i in mgr.list(kind=args.kind) if not i.live]
    if not ids:
        raise ConfigError("name the runs to export (RUN_ID ..., --group G or --all)")
    if not (args.tensorboard or args.mlflow):
        raise ConfigError("say where to export to: --tensorboard DIR and/or --mlflow DIR")
    if args.tensorboard:
        output_dir(args.tensorboard, "--tensorboard")
    if args.mlflow and "://" not in args.mlflow:
        output_dir(args.mlflow, "--mlflow")
    done = export_runs([mgr.run_dir(r) for r in dict.fromkeys(ids)], tensorboard=args.tensorboard,
                       mlflow=args.mlflow, experiment=args.experiment)
    print(f"exported {len(done['runs'])} run(s): {done['curves']} curves, {done['points']} points")
    if args.tensorboard:
        print(f"  TensorBoard: tensorboard --logdir {args.tensorboard}")
    if args.mlflow:
        uri = done["mlflow"]["uri"]
        env = "MLFLOW_ALLOW_FILE_STORE=true " if uri.startswith("file:") else ""
        print(f"  MLflow: {env}mlflow ui --backend-store-uri {uri}  (experiment {args.experiment})")


def _annotate(mgr: JobManager, args: argparse.Namespace) -> dict:
    from learngene.jobs.annotations import annotate

    given = {k: getattr(args, k) for k in ("name", "note") if getattr(args, k) is not None}  # others stay
    return annotate(mgr.run_dir(args.run_id), add_tags=args.tag, remove_tags=args.untag, **given)
