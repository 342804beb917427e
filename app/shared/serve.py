"""Start the studio for a class: `python -m app.shared.serve [--host H] [--port P]` (what `make app` runs).

Makes a new host key (and, when served beyond loopback, a join code), stores their hashes in the runs
folder (`app.shared.server`), prints the links on this console, as Jupyter prints its token, then becomes
`streamlit run app/main.py`. Whoever opens the host link may act on every run and set limits; on a
server bound beyond loopback, a browser without the join link (or code) sees only a join page.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.shared import config, server  # noqa: E402


def links(host: str, port: int, made: dict[str, str]) -> list[str]:
    """The lines to print: where the studio is, the host link, and the join link when there is a code."""
    local = f"http://127.0.0.1:{port}/" if server.is_loopback(host) or host in ("", "0.0.0.0", "::") else None
    shown = host if host not in ("", "0.0.0.0", "::") else socket.gethostname()
    public = f"http://{shown}:{port}/"
    out = [f"Learngene Studio: {local or public}"]
    out.append(f"  host link (keep it to yourself): {local or public}?host={made['host_key']}")
    if "join_code" in made:
        out.append(f"  join link for your class:        {public}?join={made['join_code']}")
        out.append(f"  join code:                       {made['join_code']}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.shared.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--print-only", action="store_true", help="make and print the secrets, do not start the server")
    args, extra = ap.parse_known_args(argv)
    runs = config.runs_dir()
    runs.mkdir(parents=True, exist_ok=True)
    made = server.new_secrets(runs, join=not server.is_loopback(args.host))
    print("\n".join(links(args.host, args.port, made)), flush=True)
    if args.print_only:
        return 0
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
           "--server.address", args.host, "--server.port", str(args.port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", *extra]
    os.chdir(ROOT)
    os.execv(sys.executable, cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
