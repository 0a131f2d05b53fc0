"""One inference engine for the registry's champions: readings in, typed scores out.

============  ===============================================================================
module        what it holds
============  ===============================================================================
engine        :class:`Engine`: loading champions, per-device history, the per-reading models
              through their serving adapters (:mod:`gridtwin_lib.models.serving`)
on_demand     the entry points of the models served otherwise (assets, waveforms, day-ahead
              forecast and plan, phase moves, segments), found by role in the registry
admission     readings of any layout to canonical ``three_phase`` rows, with typed errors
results       :class:`ScoreBatch`, :class:`ReadingScore`, :class:`ReadingError`, :class:`OnDemand`
streams       readings from files and the store, chunked scoring, writing scores
stored        scores at rest: the served models' outputs for every stored three-phase reading
              (``gridtwin scores refresh``), what the dashboards read instead of scoring on load
============  ===============================================================================

The day orchestration of the daily report (``score_day``) lives in :mod:`gridtwin_lib.daily`.
"""

from __future__ import annotations

from .engine import ALERT_FEATURES, HISTORY, Engine
from .results import ERROR_CODES, OnDemand, ReadingError, ReadingScore, ScoreBatch
from .streams import as_date, latest_day, read_readings, readings_from_store, score_stream, write_scores

__all__ = ["Engine", "ScoreBatch", "ReadingScore", "ReadingError", "OnDemand", "read_readings",
           "readings_from_store", "score_stream", "write_scores", "as_date", "latest_day", "ALERT_FEATURES", "HISTORY",
           "ERROR_CODES"]
