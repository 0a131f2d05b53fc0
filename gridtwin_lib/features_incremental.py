"""The incremental feature executor: the catalog updated in O(1) per reading, per device.

The batch executor (:func:`gridtwin_lib.features.compute`) recomputes a frame; this one
keeps per-device state and, for each new reading, returns every feature of the catalog
(:func:`gridtwin_lib.features.catalog`, same names and order) for that reading alone:

* per-reading features: the same compiled row kernel the batch executor runs
  (:mod:`.features_kernels`);
* window features over (t - w, t]: running sums of x, x², t, t², t·x per window (mean,
  sample std, least-squares slope, counts), and monotonic deques for min and max. A
  ring of the readings the longest window holds lets old readings leave the sums;
  every ``rebase_every`` readings the sums are recomputed from the ring around fresh
  origins, so rounding cannot drift;
* calendar features: the batch executor's calendar kernel on the local time, with
  per-day tables (holiday, sunrise, sunset) and UTC offsets cached.

Readings of one device must arrive in strictly increasing time; another order is refused
(the batch executor sorts, an online one cannot rewrite the past). Values equal the batch
executor's to floating-point tolerance (tests/test_features_incremental.py); missing
values are NaN here where the batch frame has null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from . import features as F
from . import features_kernels as fk
from .config import Site, default_site

_DAY_US = 86_400_000_000
_STATS = {"mean": fk.STAT_MEAN, "std": fk.STAT_STD, "min": fk.STAT_MIN, "max": fk.STAT_MAX,
          "slope": fk.STAT_SLOPE, "sum": fk.STAT_SUM}


@dataclass
class DeviceState:
    """One device's window state (see :mod:`.features_kernels` for the layout)."""

    ts: np.ndarray
    vals: np.ndarray
    ctr: np.ndarray
    sums: np.ndarray
    centre: np.ndarray
    dq: np.ndarray
    dqhl: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held by the state's arrays."""
        return sum(a.nbytes for a in (self.ts, self.vals, self.ctr, self.sums, self.centre, self.dq, self.dqhl))


class IncrementalFeatures:
    """Per-device incremental feature state for one record kind.

    Parameters
    ----------
    kind : ``"three_phase"`` or ``"meter"``.
    windows : trailing windows, e.g. ``("1m", "15m", "1h")``.
    site : nominal values, time zone, holidays and daylight; default site when None.
    thd : whether ``thd_v_pct`` is in the output (as in the batch catalog when THD is measured).
    capacity : readings each device's ring holds at first (it doubles when a window holds
        more); e.g. ``3600`` for 1 s readings and a 1 h window avoids any growth.
    rebase_every : readings between exact recomputations of the running sums.
    """

    def __init__(self, kind: str = "three_phase", windows: tuple[str, ...] = F.DEFAULT_WINDOWS,
                 site: Site | None = None, thd: bool = True, capacity: int = 64, rebase_every: int = 4096):
        if kind not in F._WINDOW_SPECS:
            raise ValueError(f"features exist for kinds three_phase and meter, not {kind!r}")
        if not windows:
            raise ValueError("give at least one window, e.g. ('1m', '15m', '1h')")
        self.kind, self.windows, self.site = kind, tuple(windows), site or default_site()
        self.names: list[str] = [f.name for f in F.catalog(kind, self.windows, thd=thd)]
        self._row, self._rows, self.inputs, outputs = F.reading_kernel(kind)
        self._constants = F.kernel_constants(self.site)
        keep = [k for k, name in enumerate(outputs) if thd or name != "thd_v_pct"]
        self._reading_keep = np.array(keep, np.int64)
        self._reading_all = len(keep) == len(outputs)
        self._reading_buf = np.empty(len(outputs))
        specs = F._WINDOW_SPECS[kind]
        bases = [base for base, *_ in specs]
        self._base_from = np.array([outputs.index(b) if b in outputs else -1 for b in bases], np.int64)
        self._base_input = np.array([self.inputs.index(b) if b not in outputs else -1 for b in bases], np.int64)
        self._zero_centre = np.array(["sum" in stats for *_, stats in specs], np.bool_)
        slots = [(b, stat) for b, (_base, _stem, _unit, stats) in enumerate(specs) for stat in ("min", "max") if stat in stats]
        self._mm_base = np.array([b for b, _ in slots], np.int64)
        self._mm_is_max = np.array([stat == "max" for _, stat in slots], np.bool_)
        self.win_us = np.array([F.window_us(w) for w in self.windows], np.int64)
        self._longest = int(np.argmax(self.win_us))
        prog = []
        for w in range(len(self.windows)):
            for b, (_base, _stem, _unit, stats) in enumerate(specs):
                for stat in stats:
                    slot = slots.index((b, stat)) if stat in ("min", "max") else -1
                    prog.append((w, b, _STATS[stat], slot))
            prog.append((w, -1, fk.STAT_N, -1))
        self._prog = np.array(prog, np.int64)
        self._n_reading, self._n_window = len(keep), len(prog)
        assert self._n_reading + self._n_window + len(fk.CALENDAR_OUTPUTS) == len(self.names)
        self._capacity, self._rebase_every = max(2, int(capacity)), int(rebase_every)
        self._states: dict[str, DeviceState] = {}
        self._x = np.empty(len(self.inputs))
        self._bases = np.empty(len(bases))
        self._offsets: dict[int, np.ndarray] = {}  # UTC day -> UTC offset [us] per quarter hour
        self._days: dict[int, tuple[np.ndarray, ...]] = {}  # local day -> one-day calendar tables

    # ------------------------------------------------------------- state

    def _new_state(self) -> DeviceState:
        cap, n_w, n_b = self._capacity, len(self.windows), len(self._base_from)
        ctr = np.zeros(3 + n_w, np.int64)
        centre = np.where(self._zero_centre, 0.0, np.nan)
        return DeviceState(np.zeros(cap, np.int64), np.full((cap, n_b), np.nan), ctr,
                           np.zeros((n_w, n_b, 6)), centre, np.zeros((n_w * len(self._mm_base), cap), np.int32),
                           np.zeros((n_w * len(self._mm_base), 2), np.int64))

    def state_bytes(self, device: str) -> int:
        """Bytes of ``device``'s window state (0 for an unknown device)."""
        state = self._states.get(device)
        return state.nbytes if state is not None else 0

    def forget(self, device: str | None = None) -> None:
        """Drop one device's state (or every device's): its next reading starts from empty windows."""
        if device is None:
            self._states.clear()
        else:
            self._states.pop(device, None)

    @property
    def devices(self) -> list[str]:
        return list(self._states)

    # ------------------------------------------------------------- updates

    def update(self, device: str, ts: datetime | int, reading: Mapping[str, float | None]) -> np.ndarray:
        """Add one reading of ``device`` and return its features.

        Parameters
        ----------
        device : device id.
        ts : reading time, an aware datetime or epoch microseconds (UTC).
        reading : canonical field -> value (V, A, W, var, Hz, quality_flags bitmask); missing
            fields and None count as not measured.

        Returns
        -------
        numpy.ndarray
            float64 values in the order of :attr:`names`; NaN where the batch executor gives null.
        """
        x = self._x
        for k, name in enumerate(self.inputs):
            v = reading.get(name)
            x[k] = np.nan if v is None else v
        return self.update_values(device, _epoch_us(ts), x)

    def update_values(self, device: str, ts_us: int, inputs: np.ndarray) -> np.ndarray:
        """:meth:`update` with the inputs already in :attr:`inputs` order (NaN = missing)."""
        state = self._states.get(device)
        if state is None:
            state = self._states[device] = self._new_state()
        elif state.ctr[0] and ts_us <= state.ts[(state.ctr[0] - 1) % state.ts.shape[0]]:
            last = int(state.ts[(state.ctr[0] - 1) % state.ts.shape[0]])
            raise ValueError(f"reading of device {device!r} at {ts_us} us is not after its last one ({last} us); "
                             "the incremental executor needs each device's readings in time order")
        out = np.empty(len(self.names))
        reading = self._reading_buf
        self._row(inputs, *self._constants, reading)
        nr, nw = self._n_reading, self._n_window
        out[:nr] = reading if self._reading_all else reading[self._reading_keep]
        bases = self._bases
        for b, (k, i) in enumerate(zip(self._base_from, self._base_input)):
            bases[b] = reading[k] if k >= 0 else inputs[i]
        window_out = out[nr:nr + nw]
        while fk.window_update(ts_us, bases, state.ts, state.vals, state.ctr, state.sums, state.centre, state.dq,
                               state.dqhl, self.win_us, self._longest, self._zero_centre, self._mm_base,
                               self._mm_is_max, self._prog, window_out, self._rebase_every) < 0:
            self._grow(state)
        self._calendar(ts_us, out[nr + nw:])
        return out

    def absorb(self, device: str, ts_us: np.ndarray, inputs: np.ndarray) -> None:
        """Add readings of ``device`` to its window state without returning their features: the state
        :meth:`update_values` on each of them in turn leaves, for building a device's state from its
        history, where only the end matters. The per-reading kernel runs once over all of them
        (its batch form), then the window update over them in one compiled loop.

        Parameters
        ----------
        device : device id.
        ts_us : (n,) reading times [µs since the epoch, UTC], strictly increasing and after the device's last.
        inputs : (n, len(:attr:`inputs`)) values in :attr:`inputs` order (NaN = missing).
        """
        ts_us = np.asarray(ts_us, dtype=np.int64)
        if not len(ts_us):
            return
        state = self._states.get(device)
        if state is None:
            state = self._states[device] = self._new_state()
        last = int(state.ts[(state.ctr[0] - 1) % state.ts.shape[0]]) if state.ctr[0] else None
        if (ts_us[1:] <= ts_us[:-1]).any() or (last is not None and ts_us[0] <= last):
            raise ValueError(f"readings of device {device!r} are not in strictly increasing time after its last one; "
                             "the incremental executor needs each device's readings in time order")
        x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float64).T)
        reading = np.empty((len(self._reading_buf), len(ts_us)))
        self._rows(x, *self._constants, reading)
        bases = np.empty((len(ts_us), len(self._base_from)))
        for b, (k, i) in enumerate(zip(self._base_from, self._base_input)):
            bases[:, b] = reading[k] if k >= 0 else x[i]
        window_out = np.empty(self._n_window)
        done = 0
        while True:  # one compiled loop over the readings; the ring grows when it fills
            done += fk.window_updates(ts_us[done:], bases[done:], state.ts, state.vals, state.ctr, state.sums, state.centre,
                                      state.dq, state.dqhl, self.win_us, self._longest, self._zero_centre, self._mm_base,
                                      self._mm_is_max, self._prog, window_out, self._rebase_every)
            if done == len(ts_us):
                break
            self._grow(state)

    @property
    def longest_window_us(self) -> int:
        """The longest window [µs]: the history a device's state needs."""
        return int(self.win_us[self._longest])

    def _grow(self, state: DeviceState) -> None:
        new_cap = 2 * state.ts.shape[0]
        state.ts, state.vals, state.dq = fk.grow(state.ts, state.vals, state.ctr, state.dq, state.dqhl,
                                                 self._longest, new_cap)

    def _calendar(self, ts_us: int, out: np.ndarray) -> None:
        utc_day = ts_us // _DAY_US
        offsets = self._offsets.get(utc_day)
        if offsets is None:
            offsets = self._offsets[utc_day] = F._utc_offsets_us(self.site.timezone, utc_day * _DAY_US, 96)
        local_us = ts_us + int(offsets[(ts_us - utc_day * _DAY_US) // F._BUCKET_US])
        local_day = local_us // _DAY_US
        table = self._days.get(local_day)
        if table is None:
            table = self._days[local_day] = F.day_table(self.site, local_day, local_day)
        fk.calendar_row(local_us, 0, *table, out)

    def as_dict(self, values: np.ndarray) -> dict[str, float | None]:
        """``values`` from :meth:`update` as name -> value, None where missing."""
        return {n: (None if v != v else float(v)) for n, v in zip(self.names, values.tolist())}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(ts: datetime | int) -> int:
    """Epoch microseconds of an aware datetime (exact integer arithmetic) or of an int."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError(f"timestamp {ts.isoformat()} has no time zone; give it in UTC (e.g. tzinfo=timezone.utc)")
        return (ts - _EPOCH) // timedelta(microseconds=1)
    return int(ts)
