"""Dashboard 01's live panel: what ``gridtwin live`` pushes about the selected device, as it arrives.

The live scorer (:mod:`gridtwin_lib.inference.live`) scores every reading the collector
acknowledges and pushes its scores, and every alert opened, made more severe or closed, over a
WebSocket. While the panel's toggle is on it subscribes for the selected device only
(``?device=``), keeps that device's latest reading and its recent alerts (:class:`LiveFeed`) and
redraws at most every :data:`REDRAW_S` s. ``GRIDTWIN_LIVE_URL`` says where the scorer listens
(default :data:`DEFAULT_URL`); with none there, the panel says how to start one. The replay above
it stays what it was: stored ranges; this panel is the push.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import time
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import quote

from . import MissingData, local_text, output_column

LIVE_URL_ENV = "GRIDTWIN_LIVE_URL"
DEFAULT_URL = "ws://127.0.0.1:8090/ws/scores"
REDRAW_S = 0.5  # [s] at most two redraws a second, however fast readings arrive
MAX_ALERTS = 8
RECEIVE_S = 1.0  # [s] how often the subscription looks at the toggle and the selection while nothing arrives

# what the latest reading shows: (catalogue model name or None for a readings feature, column, words, format)
_SHOWN = (
    (None, "v_mean_dev_pct", "mean voltage from nominal", "{:+.1f} %"),
    (None, "frequency", "frequency", "{:.3f} Hz"),
    ("voltage_anomaly", "anomaly_score", "voltage anomaly score", "{:.2f}"),
    ("voltage_sag", "p_sag_15m", "sag risk, next 15 min", "pct"),
    ("frequency_stability", "p_excursion", "frequency excursion risk", "pct"),
    ("grid_stability", "p_disturbance_30min", "disturbance risk, next 30 min", "pct"),
    ("phase_imbalance", "cause", "unbalance cause", "text"),
)


def live_url() -> str:
    return os.environ.get(LIVE_URL_ENV) or DEFAULT_URL


def _column(spec_name: str | None, output: str) -> str | None:
    if spec_name is None:
        return output
    try:
        return output_column(spec_name, output)
    except MissingData:
        return None


def _fmt(value: Any, how: str) -> str:
    if how == "pct":
        return f"{100 * value:.0f} %"
    if how == "text":
        return str(value).replace("_", " ")
    return how.format(value)


class LiveFeed:
    """One device's latest pushed reading and recent alerts: the panel's state, without a socket.

    Parameters
    ----------
    device : the device the subscription is for.
    source : its source (the site whose local time the panel shows).
    """

    def __init__(self, device: str, source: str | None):
        self.device, self.source = device, source
        self.latest: dict[str, Any] | None = None
        self.alerts: deque[dict[str, Any]] = deque(maxlen=MAX_ALERTS)
        self.readings = 0
        self._columns = [(c, words, how) for spec, out, words, how in _SHOWN if (c := _column(spec, out)) is not None]

    def apply(self, message: dict[str, Any]) -> None:
        """Take one pushed message (a reading's scores or an alert change) of this device."""
        if message.get("device_id") != self.device:
            return
        if message.get("type") == "score":
            self.latest, self.readings = message, self.readings + 1
        elif message.get("type") == "alert":
            self.alerts.appendleft(message)

    def _when(self, iso: str | None) -> str:
        if not iso:
            return "?"
        return local_text(datetime.fromisoformat(iso.replace("Z", "+00:00")), self.source)

    def html(self) -> str:
        """The panel's text: the latest reading in words, then the recent alerts, newest first."""
        if self.latest is None:
            return f"<i>live: subscribed for device {html.escape(self.device)}; no reading pushed yet</i>"
        scores = self.latest.get("scores", {})
        shown = [f"{words} <b>{_fmt(scores[c], how)}</b>" for c, words, how in self._columns if scores.get(c) is not None]
        status = "" if self.latest.get("status") == "ok" else f" ({self.latest.get('status')}: not every model could score it)"
        lines = [f"<b>live</b>, device {html.escape(self.device)}: {self.readings:,} readings pushed since connected; "
                 f"latest at {self._when(self.latest.get('ts'))}{status}",
                 "; ".join(shown) or "no score for this reading"]
        if self.alerts:
            items = "".join(
                f"<li>{html.escape(a.get('severity') or '')} · {html.escape(str(a.get('event')))} at "
                f"{self._when(a.get('last_utc'))}: {html.escape(a.get('message') or '')} "
                f"<i>({html.escape(a.get('suggested_action') or '')})</i></li>" for a in self.alerts)
            lines.append(f"alerts pushed (newest first):<ul>{items}</ul>")
        else:
            lines.append("no alert pushed since connected")
        return "<br>".join(lines)


class LivePanel:
    """The toggle and the text of the live panel; ``selection()`` gives (source, device)."""

    def __init__(self, selection, url: str | None = None):
        import ipywidgets as w

        self.selection, self.url = selection, url
        self.toggle = w.ToggleButton(value=False, description="live", icon="bolt",
                                     tooltip="subscribe to what `gridtwin live` pushes for this device "
                                             f"(${LIVE_URL_ENV}, default {DEFAULT_URL})")
        self.text = w.HTML()
        self.feed: LiveFeed | None = None
        self._task: asyncio.Task | None = None
        self.toggle.observe(self._toggled, "value")

    def _toggled(self, change) -> None:
        if change["new"]:
            self.restart()
        else:
            self.text.value = ""

    def restart(self) -> None:
        """(Re)subscribe for the current selection (called when the toggle turns on or the device changes)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.toggle.value:
            self._task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        """Subscribe and redraw until the toggle goes off or the selection changes."""
        import websockets

        source, device = self.selection()
        base = self.url or live_url()
        url = f"{base}?device={quote(device)}"
        self.feed = feed = LiveFeed(device, source)
        self.text.value = f"<i>live: connecting to {html.escape(base)} for device {html.escape(device)} …</i>"
        try:
            async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
                self.text.value = feed.html()
                drawn = time.monotonic()
                while self.toggle.value and self.selection() == (source, device):
                    try:
                        text = await asyncio.wait_for(ws.recv(), timeout=RECEIVE_S)
                    except TimeoutError:
                        continue
                    feed.apply(json.loads(text))
                    if time.monotonic() - drawn >= REDRAW_S:
                        self.text.value, drawn = feed.html(), time.monotonic()
                self.text.value = feed.html() if self.toggle.value else ""
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            self.text.value = (f"<span class='gridtwin-missing'>live: no live scorer at {html.escape(base)} ({html.escape(why)}). "
                               "Start one beside the collector with <code>gridtwin live</code> (it pushes what "
                               f"<code>gridtwin collect</code> acknowledges), or set {LIVE_URL_ENV}.</span>")


__all__ = ["LiveFeed", "LivePanel", "live_url", "LIVE_URL_ENV", "DEFAULT_URL"]
