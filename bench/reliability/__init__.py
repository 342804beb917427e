"""Fault probes: hostile inputs and faults, each reproduced and judged; `python -m bench.reliability`.

The probe table is data (`table.PROBES`), the probe code lives in `probes_*.py`, the runner and the
judges in `runner`.
"""

from bench.reliability.runner import (
           DOC,
           Ctx,
           Outcome,
           Probe,
           _judged,
           main,
           one_line_error,
           report,
           run_probes,
)
from bench.reliability.table import AREAS, PROBES

__all__ = ["AREAS", "DOC", "PROBES", "Ctx", "Outcome", "Probe", "_judged", "main", "one_line_error", "report",
           "run_probes"]
