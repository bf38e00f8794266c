"""A server simulated past this machine's two cores, with skqueue's own scheduler deciding.

* :mod:`.engine`: one design at one load on a virtual clock (:func:`simulate`);
* :mod:`.costs`: the event path's costs and their measured defaults; :mod:`.calibrate`
  measures them on the machine it runs on;
* :mod:`.run`: latency-versus-load sweeps in the real harness's results format
  (``skqueue sim run``).
"""

from __future__ import annotations

from .calibrate import calibrate
from .costs import Costs
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
