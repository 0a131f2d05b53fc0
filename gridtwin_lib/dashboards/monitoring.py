"""Dashboard 01: replay a stored time range through the monitoring champions, in place.

:func:`load` reads one device's readings of a source and time range with what the voltage-anomaly,
frequency-stability and phase-imbalance models said about them: the scores the pipeline stored
(:mod:`gridtwin_lib.inference.stored`), or, for readings newer than those, the engine's scores on load
(:func:`gridtwin_lib.dashboards.score_range`). A :class:`Replay` then moves a clock through the
range: the ``FigureWidget`` traces grow up to the clock (no new widgets, one browser
update per step), the frequency forecast is drawn ahead of it with the normal band, and the
status line gives the unbalance cause and the disturbance class (the registry's ``waveforms`` role)
of the latest waveform window
with its harmonic spectrum.

The waveform windows come from the PQ recorder twin (``waveform_windows`` truth of the
sources of the waveform model's simulations, their own 1 s timeline); the replay steps through them
alongside. Models are found in the registry (:func:`gridtwin_lib.dashboards.model_id`); the page names
none by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from ..models.monitoring.frequency_stability import BAND_HZ
from . import days as shared_days
from . import (
    decimate,
    local_start,
    local_text,
    model_id,
    score_range,
    simulated_sources,
    source_label,
    store,
    time_axis,
    timezone_of,
)
from . import engine as shared_engine
from . import sources as shared_sources

KIND = "three_phase"
WINDOW_HOURS = (1, 3, 6, 12)
DEFAULT_HOURS = 1
DEFAULT_START_HOUR = 16  # local time at the source's site: the evening ramp
STEPS = 120  # replay steps per shown range
SPEEDS = {"60× real time": 60, "300×": 300, "900×": 900, "3600×": 3600}
FOLLOW_EVERY_S = 10  # [s] how often "follow newest" looks for new readings
ANOMALY, FREQUENCY, IMBALANCE = "voltage_anomaly", "frequency_stability", "phase_imbalance"  # catalogue names
WAVEFORM_ROLE = "waveforms"  # the registry's role of the waveform classifier
MAX_WAVEFORM_WINDOWS = 240
SAMPLES_PER_CYCLE = 64  # the waveform twin: 10 cycles of 64 samples per window
MAX_HARMONIC = 25
_CACHE: dict[str, Any] = {}


def models() -> dict[str, str]:
    """The page's model ids by what they do (from the registry)."""
    return {"anomaly": model_id(ANOMALY), "frequency": model_id(FREQUENCY), "imbalance": model_id(IMBALANCE),
            "waveforms": model_id(role=WAVEFORM_ROLE)}


def col(what: str, output: str) -> str:
    """The engine's column of ``output`` of the page's model ``what`` (a key of :func:`models`)."""
    return f"{models()[what]}.{output}"


def sources() -> list[str]:
    """Stored three-phase sources, the voltage-anomaly model's training run first (a mixed-event feeder at 1 s)."""
    return shared_sources(simulated_sources(ANOMALY)[:1])


def devices(source: str) -> list[str]:
    return store().scan(KIND, source=source).select(pl.col("device_id").unique().sort()).collect()["device_id"].to_list()


def days(source: str) -> list[date]:
    return shared_days(source)


@dataclass
class Window:
    """One device's scored readings over [start, end)."""

    source: str
    device_id: str
    start: datetime
    end: datetime
    frame: pl.DataFrame  # readings and ``<model_id>.<output>`` columns
    plot: pl.DataFrame  # decimated for drawing, with ``t_local`` (naive local time of the source's site)
    missing: dict[str, str]


def load(source: str, device_id: str, day: date, start_hour: int = DEFAULT_START_HOUR, hours: int = DEFAULT_HOURS) -> Window:
    """``hours`` of one device from local ``day`` ``start_hour`` at the source's site with the models' outputs
    (stored scores, else scored on load after a warm-up of the engine's history: :func:`~gridtwin_lib.dashboards.score_range`)."""
    start = local_start(day, start_hour, source)
    end = start + timedelta(hours=int(hours))
    scored = score_range([m for k, m in models().items() if k != "waveforms"], source, device_id, start, end)
    plot = decimate(scored.frame).with_columns(_local(pl.col("ts"), source).alias("t_local"))
    return Window(source, device_id, start, end, scored.frame, plot, scored.missing)


def _local(ts: pl.Expr, source: str) -> pl.Expr:
    """UTC instants as naive local times of the source's site (what the figure's time axis shows)."""
    return ts.dt.convert_time_zone(timezone_of(source)).dt.replace_time_zone(None)


def _local_value(t: datetime, source: str) -> datetime:
    return pl.select(_local(pl.lit(t).cast(pl.Datetime("us", "UTC")), source)).item()


def newest(source: str, device_id: str) -> datetime | None:
    """Time [UTC] of the device's newest stored reading: for the collector's source this moves as
    devices post (the collector compacts its log into the store every few seconds)."""
    return store().scan(KIND, source=source, device_id=device_id).select(pl.col("ts").max()).collect().item()


def follow_range(source: str, device_id: str, hours: int = DEFAULT_HOURS) -> tuple[date, int] | None:
    """(day, start hour), local at the source's site, of the ``hours``-long range that ends with the newest
    reading's hour (clipped to that day), or None when the device has no readings."""
    t = newest(source, device_id)
    if t is None:
        return None
    local = _local_value(t, source)
    return local.date(), max(0, local.hour - int(hours) + 1)


class Follower:
    """"Follow newest" for the replay: while ``toggle`` is on, every :data:`FOLLOW_EVERY_S` s,
    ``jump(day, start_hour)`` to the range ending with the selected device's newest reading
    when one has arrived since the last look.

    ``selection()`` gives (source, device, hours); ``report(fn, what)`` runs ``fn`` showing a
    failure as a note instead of a traceback (``dashboards.attempt``).
    """

    def __init__(self, toggle, selection, jump, report, every_s: float = FOLLOW_EVERY_S):
        self.toggle, self.selection, self.jump, self.report, self.every_s = toggle, selection, jump, report, every_s
        self.seen: datetime | None = None
        toggle.observe(self._toggled, "value")

    def check(self) -> bool:
        """Jump if the device has a reading newer than the last one seen; True when it did."""
        source, device_id, hours = self.selection()
        t = newest(source, device_id)
        if t is None or t == self.seen:
            return False
        self.seen = t
        self.jump(*follow_range(source, device_id, hours))
        return True

    async def _loop(self) -> None:
        import asyncio

        while self.toggle.value:
            self.report(self.check, "the newest readings")
            await asyncio.sleep(self.every_s)

    def _toggled(self, change) -> None:
        if change["new"]:
            import asyncio

            self.seen = None
            asyncio.ensure_future(self._loop())


def waveforms() -> Any:
    """The latest PQ recorder windows (disturbance class and THD per window, samples kept), or None without data or
    champion."""
    if "waveforms" not in _CACHE:
        from ..datasets.monitoring.harmonic_analysis import waveform_windows

        st = store()
        srcs = st.truth_sources("waveform_windows")
        waveform_model = models()["waveforms"]
        eng = shared_engine((waveform_model,))  # the classifier alone: the page's other models are read from stored scores
        if not srcs or waveform_model not in eng.estimators:
            _CACHE["waveforms"] = None
        else:
            w = waveform_windows(st, srcs[-1]).sort_values("ts").tail(MAX_WAVEFORM_WINDOWS).reset_index(drop=True)
            scored = eng.score_waveforms(w)
            _CACHE["waveforms"] = w.assign(disturbance_class=scored[f"{waveform_model}.label"].to_numpy(),
                                           thd_pct=scored[f"{waveform_model}.thd_pct"].to_numpy(), source=srcs[-1])
    return _CACHE["waveforms"]


def spectrum(samples: np.ndarray, samples_per_cycle: int = SAMPLES_PER_CYCLE) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic orders 1..MAX_HARMONIC and their RMS magnitudes [V] of a whole number of cycles."""
    n = samples.size
    cycles = n // samples_per_cycle
    amp = np.abs(np.fft.rfft(samples[: cycles * samples_per_cycle])) * 2.0 / (cycles * samples_per_cycle) / np.sqrt(2.0)
    orders = np.arange(1, MAX_HARMONIC + 1)
    return orders, amp[orders * cycles]


class Replay:
    """One live ``FigureWidget`` over a :class:`Window` and the clock that moves through it.

    Rows: phase voltages, currents, frequency with its 10-s forecast and the normal band, and
    the voltage anomaly score with its flags (one shared time axis), and the harmonic spectrum of
    the latest waveform window. The widget is built showing the whole range (plotly's
    FigureWidget drops changes made before display); :meth:`show` then moves the clock in place.
    """

    def __init__(self, window: Window):
        from . import figure_widget

        self.window = window
        self.figure = figure_widget(self._figure(STEPS - 1))
        self.status = self._status(self.clock(STEPS - 1), self._latest(self.clock(STEPS - 1)), STEPS - 1)

    def load(self, window: Window) -> None:
        """Show another window in the same widget (after it is displayed), clock at the end."""
        from . import refresh

        self.window = window
        refresh(self.figure, self._figure(STEPS - 1))
        self.status = self._status(self.clock(STEPS - 1), self._latest(self.clock(STEPS - 1)), STEPS - 1)

    # ----------------------------------------------------------------- the figure
    def _figure(self, step: int):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        w = self.window
        fig = make_subplots(rows=5, cols=1, vertical_spacing=0.045, row_heights=[0.22, 0.18, 0.2, 0.16, 0.24],
                            subplot_titles=("phase voltage [V]", "phase current [A]",
                                            f"frequency [Hz], forecast 10 s ahead, normal band {BAND_HZ[0]}–{BAND_HZ[1]} Hz",
                                            "voltage anomaly score [0-1], flagged readings in red",
                                            "latest waveform window"))
        for p, colour in zip("abc", ("#e76f51", "#2a9d8f", "#264653"), strict=True):
            fig.add_trace(go.Scatter(name=f"V{p} / I{p}", legendgroup=p, line=dict(color=colour, width=1)), 1, 1)
            fig.add_trace(go.Scatter(name=f"I{p}", legendgroup=p, showlegend=False, line=dict(color=colour, width=1)), 2, 1)
        fig.add_trace(go.Scatter(name="f", line=dict(color="#6d597a", width=1)), 3, 1)
        fig.add_trace(go.Scatter(name="frequency forecast", mode="lines+markers", line=dict(color="#f4a261", width=2)), 3, 1)
        fig.add_trace(go.Scatter(name="anomaly score", line=dict(color="#264653", width=1)), 4, 1)
        fig.add_trace(go.Scatter(name="anomaly flag", mode="markers", marker=dict(color="#e63946", size=5)), 4, 1)
        fig.add_trace(go.Bar(name="harmonic RMS [V]", marker_color="#457b9d"), 5, 1)
        fig.add_hrect(y0=BAND_HZ[0], y1=BAND_HZ[1], fillcolor="#2a9d8f", opacity=0.1, line_width=0, row=3, col=1)
        for row in (1, 2, 3, 4):
            fig.update_xaxes(range=[_local_value(w.start, w.source), _local_value(w.end, w.source)], matches="x", row=row, col=1)
        fig.update_xaxes(title_text=time_axis(w.source), row=4, col=1)
        fig.update_xaxes(title_text="harmonic order", row=5, col=1)
        fig.update_yaxes(type="log", title_text="RMS [V]", row=5, col=1)
        title = f"{source_label(w.source)} / {w.device_id}: {local_text(w.start, w.source)} – {local_text(w.end, w.source, '%H:%M')}"
        if w.missing:
            title += " (no output from " + ", ".join(sorted(w.missing)) + ")"
        fig.update_layout(height=980, title=title, legend=dict(orientation="h", y=1.04, x=0.4))
        for trace, values in zip(fig.data, self._trace_values(step), strict=True):
            trace.update(values)
        return fig

    def _trace_values(self, step: int) -> list[dict]:
        """x/y of every trace at clock ``step`` (same order as the figure's traces)."""
        t = self.clock(step)
        upto = self.window.plot.filter(pl.col("ts") <= t)
        x = upto["t_local"].to_list()
        values = []
        for p in "abc":
            values += [dict(x=x, y=upto[f"v_{p}"].to_list()), dict(x=x, y=upto[f"i_{p}"].to_list())]
        values.append(dict(x=x, y=upto["frequency"].to_list()))
        fx, fy = self._forecast(self._latest(t))
        values.append(dict(x=fx, y=fy))
        score = col("anomaly", "anomaly_score")
        if score in upto.columns:
            flagged = upto.filter(pl.col(col("anomaly", "is_anomaly")).fill_null(False))
            values += [dict(x=x, y=upto[score].to_list()), dict(x=flagged["t_local"].to_list(), y=flagged[score].to_list())]
        else:
            values += [dict(x=[], y=[]), dict(x=[], y=[])]
        orders, mags, _ = self._waveform(step)
        values.append(dict(x=orders, y=mags))
        return values

    # ----------------------------------------------------------------- the clock
    def clock(self, step: int) -> datetime:
        w = self.window
        return w.start + (w.end - w.start) * (min(max(step, 0), STEPS - 1) + 1) / STEPS

    def _latest(self, t: datetime) -> pl.DataFrame:
        return self.window.frame.filter(pl.col("ts") <= t).tail(1)

    def show(self, step: int) -> str:
        """Move the clock to ``step`` (0..STEPS-1) in place: grow the traces, draw the forecast and the latest
        waveform's spectrum; return the status line."""
        with self.figure.batch_update():
            for trace, values in zip(self.figure.data, self._trace_values(step), strict=True):
                trace.update(values)
        self.status = self._status(self.clock(step), self._latest(self.clock(step)), step)
        return self.status

    def _forecast(self, latest: pl.DataFrame) -> tuple[list, list]:
        cols = [col("frequency", f"f_t+{h}") for h in range(1, 11)]
        if latest.height == 0 or cols[0] not in latest.columns or latest[cols[0]][0] is None:
            return [], []
        t0 = _local_value(latest["ts"][0], self.window.source)
        return ([t0, *[t0 + timedelta(seconds=h) for h in range(1, 11)]],
                [latest["frequency"][0], *[latest[c][0] for c in cols]])

    def _status(self, t: datetime, latest: pl.DataFrame, step: int) -> str:
        def value(column: str, fmt: str = "{}") -> str:
            if latest.height == 0 or column not in latest.columns or latest[column][0] is None:
                return "–"
            v = latest[column][0]
            if isinstance(v, bool):  # words, not Python's True / False
                return "anomaly" if v else "normal"
            return fmt.format(v)

        parts = [f"<b>{local_text(t, self.window.source, '%Y-%m-%d %H:%M:%S')}</b>",
                 f"unbalance cause: <b>{value(col('imbalance', 'cause'))}</b>",
                 f"P(frequency leaves the band in 10 s): <b>{value(col('frequency', 'p_excursion'), '{:.2f}')}</b>",
                 f"voltage: <b>{value(col('anomaly', 'is_anomaly'))}</b>", self._waveform(step)[2]]
        parts += [f"<span style='color:#999'>{m}: {why[:120]}</span>" for m, why in self.window.missing.items()]
        return " · ".join(parts)

    def _waveform(self, step: int) -> tuple[list, list, str]:
        """Harmonic orders, RMS [V] and a status text for the waveform window shown at ``step``."""
        wf = waveforms()
        if wf is None:
            return [], [], "waveform class: no waveform windows or no champion"
        from ..models.monitoring.harmonic_analysis import SAMPLE_COLUMNS
        from . import source_label

        row = wf.iloc[step % len(wf)]
        orders, mags = spectrum(row[SAMPLE_COLUMNS].to_numpy(float))
        return (orders.tolist(), np.maximum(mags, 1e-3).tolist(),
                f"waveform class at the separate PQ recorder {source_label(row['source'])}, window {row['window_id']}, "
                f"not this device: <b>{str(row['disturbance_class']).replace('_', ' ')}</b> (THD {row['thd_pct']:.1f} %)")


def interval_ms(window: Window, speed: float) -> int:
    """Play-widget interval [ms] for ``speed`` × real time (at least 150 ms so the browser keeps up)."""
    step_s = (window.end - window.start).total_seconds() / STEPS
    return int(max(150, 1000.0 * step_s / float(speed)))


def page(source: str | None = None, device: str | None = None):
    """The whole dashboard: the replay of ``source`` / ``device`` (None = the first stored)."""
    from . import dashboard, guarded
    from . import page as layout

    info = dashboard("01_realtime_monitoring")
    return layout(info.title, info.summary, guarded(lambda: view(source, device), "the real-time replay"),
                  model_ids=lambda: models().values())


def view(source_name: str | None = None, device_name: str | None = None):
    import ipywidgets as w

    from . import Quiet, attempt, choose, labelled, replace_options, row

    names = sources()
    source = w.Dropdown(options=labelled(names), value=choose(names, source_name, "source"), description="source")
    device_names = devices(source.value)
    device = w.Dropdown(options=device_names, value=choose(device_names, device_name, "device"), description="device")
    day = w.Dropdown(options=days(source.value), description="day (local)")
    start_hour = w.IntSlider(value=DEFAULT_START_HOUR, min=0, max=23, description="from hour (local)")
    hours = w.Dropdown(options=WINDOW_HOURS, value=DEFAULT_HOURS, description="hours")
    speed = w.Dropdown(options=SPEEDS, value=300, description="speed")
    play = w.Play(value=STEPS - 1, min=0, max=STEPS - 1, step=1, description="replay")
    clock = w.IntSlider(value=STEPS - 1, min=0, max=STEPS - 1, description="clock", readout=False)
    w.jslink((play, "value"), (clock, "value"))
    status, notes = w.HTML(), w.VBox()
    replay = Replay(load(source.value, device.value, day.value, start_hour.value, hours.value))
    play.interval = interval_ms(replay.window, speed.value)

    def show(_=None):
        status.value = replay.show(clock.value)

    def reload(_=None):
        notes.children = []
        window = attempt(notes, lambda: load(source.value, device.value, day.value, start_hour.value, hours.value),
                         "the replay range")
        if window is not None:
            replay.load(window)
            play.interval = interval_ms(window, speed.value)
            clock.value = STEPS - 1
            status.value = replay.status

    reload_once = Quiet(reload)  # several widgets set together reload the replay once

    def pick_source(_=None):
        with reload_once.setting():
            replace_options(device, devices(source.value))
            replace_options(day, days(source.value))

    follow = w.ToggleButton(value=False, description="follow newest", icon="refresh",
                            tooltip=f"jump to the device's newest readings and look for new ones every {FOLLOW_EVERY_S} s "
                                    "(e.g. the collector's source while devices post)")

    def jump(new_day, new_hour):
        with reload_once.setting():
            replace_options(day, days(source.value))
            day.value, start_hour.value = new_day, new_hour

    Follower(follow, lambda: (source.value, device.value, hours.value), jump, lambda fn, what: attempt(notes, fn, what))
    from .live import LivePanel

    live = LivePanel(lambda: (source.value, device.value))  # what `gridtwin live` pushes for the device, as it arrives
    device.observe(lambda _: live.restart(), "value")
    source.observe(pick_source, "value")
    for control in (device, day, start_hour, hours):
        control.observe(reload_once, "value")
    speed.observe(lambda _: setattr(play, "interval", interval_ms(replay.window, speed.value)), "value")
    clock.observe(show, "value")
    status.value = replay.status
    return w.VBox([row(source, device, day), row(start_hour, hours, speed), row(play, clock, follow, live.toggle), status,
                   live.text, notes, replay.figure])
