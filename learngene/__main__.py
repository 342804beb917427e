"""`python -m learngene ...`: the command line, the twin of every UI action."""

from learngene.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
