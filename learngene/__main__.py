"""`python -m learngene ...`: the command line, the twin of every UI action."""

from learngene.cli import commands, main  # noqa: F401 - commands(): what the fork server lets a job run

if __name__ == "__main__":
    raise SystemExit(main())
