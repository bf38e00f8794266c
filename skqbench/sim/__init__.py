"""A server simulated past this machine's two cores, with skqueue's own scheduler deciding.

* :mod:`.engine`: one design at one load on a virtual clock (:func:`simulate`);
* :mod:`.costs`: the event path's costs, their measured defaults and :func:`calibrate`;
* :mod:`.run`: latency-versus-load sweeps in the real harness's results format
  (``skqueue sim run``).
"""

from __future__ import annotations

from .costs import Costs, calibrate
from .engine import DESIGNS, Outcome, SimConfig, simulate
from .run import SimPlan, Speed, run_sim

__all__ = [
    "DESIGNS",
    "Costs",
    "Outcome",
    "SimConfig",
    "SimPlan",
    "Speed",
    "calibrate",
    "run_sim",
    "simulate",
]
