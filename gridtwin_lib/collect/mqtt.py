"""MQTT ingestion for the collector: the HTTP path's parsing, authentication and durable log.

``gridtwin collect --mqtt mqtt://[user:password@]host[:port]`` subscribes (MQTT 5, QoS 1) to

``gridtwin/<device>/readings``  firmware payload v1 (kind ``meter``), as ``POST /api/energy-data/``
``gridtwin/<device>/grid``      reference-system three-phase payload, as ``POST /api/grid/data``

Each PUBLISH carries the device's API key (``gridtwin devices add``) in the MQTT 5 user
property ``api-key``; the key must belong to ``<device>`` of the topic, so one device cannot
publish as another. (Broker accounts, e.g. Mosquitto's ``password_file`` and ``acl_file``,
are a second, independent fence.) The body is validated by the HTTP collector's
:func:`~.payloads.parse_body` and committed to the same write-ahead log, through
:meth:`~.app.Collector.authenticate` and :meth:`~.wal.WriteAheadLog.append` on the
collector's event loop.

**Acknowledgement**: paho's manual ack: the PUBACK is sent only after the log commit, so a
message the broker saw acknowledged is on disk. When the commit fails no PUBACK is sent and
the broker delivers the message again on the next connection (the collector keeps a
persistent session: fixed client id, ``clean_start=False``). Repeated deliveries are
duplicates by (device, boot, seq) exactly as over HTTP. Refused messages (unknown or revoked
key, another device's topic, nothing valid) are acknowledged too, since a redelivery would
be refused again; the rejected items of a valid key are kept in the rejects dataset as over HTTP.

**Result**: when a PUBLISH names an MQTT 5 response topic, the HTTP API's answer (``status``
plus ``accepted``, ``stored``, ``duplicates``, ``rejected``) is published there (QoS 1, with
the request's correlation data).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .app import accept_body, refusal_body
from .payloads import GRID, METER, PayloadSpec

log = logging.getLogger("gridtwin.collect.mqtt")

TOPIC_ROOT = "gridtwin"
#: topic suffix -> payload spec
TOPIC_KINDS: dict[str, PayloadSpec] = {"readings": METER, "grid": GRID}
KEY_PROPERTY = "api-key"
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps unacknowledged messages this long while we are away


@dataclass(frozen=True)
class BrokerUrl:
    """Where the broker is and how the collector logs in (not a device's credentials)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """``mqtt://[user:password@]host[:port]`` (1883) or ``mqtts://...`` (TLS, 8883)."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"MQTT broker URL {url!r} is not like mqtt://host:1883 or mqtts://user:password@host:8883")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"MQTT broker URL {url!r} has a bad port; use a number 1-65535") from None
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


    def check_reachable(self, timeout_s: float = 5.0) -> None:
        """Raise ValueError with what to do when nothing accepts TCP connections at the broker's address."""
        import socket

        try:
            socket.create_connection((self.host, self.port), timeout=timeout_s).close()
        except OSError as exc:
            raise ValueError(f"cannot reach the MQTT broker at {self.host}:{self.port} ({exc.strerror or exc}); "
                             "start one (apt-get install mosquitto) or fix --mqtt") from None


def topic_for(device: str, suffix: str = "readings") -> str:
    """The topic a device publishes ``suffix`` (``readings`` or ``grid``) to."""
    return f"{TOPIC_ROOT}/{device}/{suffix}"


class MqttBridge:
    """Subscribes to the device topics and feeds the collector; acks after the log commit.

    paho's network thread receives; every message is handled on ``loop`` (the collector's
    event loop), where authentication, the key cache and the log's futures live.

    Parameters
    ----------
    url : broker URL, see :meth:`BrokerUrl.parse`.
    collector : the running :class:`~.app.Collector` (registry and write-ahead log).
    loop : the event loop the collector runs on.
    client_id : MQTT client id; fixed, so the broker keeps the session (and unacknowledged
        messages) across restarts. One collector per client id.
    session_expiry_s : how long the broker keeps the session while the collector is away [s].
    """

    def __init__(self, url: str, collector, loop: asyncio.AbstractEventLoop, client_id: str = "gridtwin-collector",
                 session_expiry_s: int = SESSION_EXPIRY_S):
        self.broker = BrokerUrl.parse(url)
        self.session_expiry_s = int(session_expiry_s)
        self.collector, self.loop = collector, loop
        self.received = 0  # messages taken from the broker
        self.acknowledged = 0  # PUBACKs sent
        self.committed = 0  # messages whose readings reached the log
        self._tasks: set[asyncio.Task] = set()
        self._accepting = True
        self._subscribed = asyncio.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.manual_ack_set(True)
        if self.broker.username:
            self.client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self.client.tls_set()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # ------------------------------------------------------------- lifecycle

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect, subscribe, and return once the broker confirmed the subscription."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        b = self.broker
        try:
            await asyncio.to_thread(self.client.connect, b.host, b.port, 30, clean_start=False, properties=props)
        except OSError as exc:
            raise ConnectionError(f"cannot reach the MQTT broker at {b.host}:{b.port} ({exc}); start one "
                                  "(apt-get install mosquitto) or fix --mqtt") from None
        self.client.loop_start()
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout_s)
        except TimeoutError:
            self.client.loop_stop()
            raise ConnectionError(f"the MQTT broker at {b.host}:{b.port} did not accept the connection and subscription "
                                  f"within {timeout_s:.0f} s; check its credentials and ACL") from None
        log.info("MQTT: subscribed to %s/+/{%s} at %s:%d", TOPIC_ROOT, ",".join(TOPIC_KINDS), b.host, b.port)

    async def stop(self) -> None:
        """Stop taking messages, finish (commit and ack) those in hand, then disconnect.

        Messages arriving meanwhile are not acknowledged; the broker delivers them again
        on the next connection.
        """
        self._accepting = False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._disconnect)

    def _disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------- paho's thread

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        client.subscribe([(f"{TOPIC_ROOT}/+/{suffix}", mqtt.SubscribeOptions(qos=1)) for suffix in TOPIC_KINDS])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT broker refused the subscription: %s", ", ".join(failed))
            return
        self.loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.loop.call_soon_threadsafe(self._spawn, message)

    # ------------------------------------------------------------- the event loop

    def _spawn(self, message: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return
        self.received += 1
        task = self.loop.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: mqtt.MQTTMessage) -> None:
        try:
            status, body = await self._ingest(message)
        except Exception as exc:  # the log could not commit: no PUBACK, the broker redelivers
            log.exception("MQTT message on %s not stored; it stays unacknowledged", message.topic)
            self._respond(message, 503, {"accepted": 0, "stored": 0, "duplicates": [], "rejected": [
                {"index": None, "field": None, "rule": "wal.commit", "detail": f"not stored ({type(exc).__name__}); "
                 "the broker delivers it again when the collector reconnects"}]})
            return
        if message.qos > 0:
            self.client.ack(message.mid, message.qos)
            self.acknowledged += 1
        self._respond(message, status, body)

    async def _ingest(self, message: mqtt.MQTTMessage) -> tuple[int, dict[str, Any]]:
        """(HTTP-like status, the HTTP API's answer body) for one message; raises when the log fails."""
        parts = message.topic.split("/")
        spec = TOPIC_KINDS.get(parts[2]) if len(parts) == 3 else None
        if spec is None:
            return _refusal(404, "mqtt.topic", f"topic {message.topic!r} is not {TOPIC_ROOT}/<device>/readings or /grid")
        auth = await self.collector.authenticate(_user_property(message, KEY_PROPERTY))
        if auth.status == "unknown":
            log.warning("MQTT message on %s refused: missing or unknown api-key", message.topic)
            return _refusal(401, "auth.key", f"missing or unknown MQTT 5 user property {KEY_PROPERTY!r}; register "
                            "the device with `gridtwin devices add NAME` and send its key")
        device = auth.device
        if auth.status == "revoked":
            return _refusal(403, "auth.revoked", f"device {device!r} is revoked; register it again under a new name")
        if parts[1] != device:
            log.warning("MQTT message on %s refused: the key belongs to %r", message.topic, device)
            return _refusal(403, "auth.topic", f"the key belongs to device {device!r}; publish to {topic_for(device, parts[2])}")
        if len(message.payload) > MAX_PAYLOAD_BYTES:
            return _refusal(413, "size.body", f"payload over {MAX_PAYLOAD_BYTES:,} bytes; send smaller batches")
        status, answer = await accept_body(self.collector, spec, bytes(message.payload), device, f"mqtt:{message.topic}")
        if status != 413:  # everything but a body refused by its item count went through the log's commit
            self.committed += 1
        return status, answer

    def _respond(self, message: mqtt.MQTTMessage, status: int, body: dict[str, Any]) -> None:
        props = getattr(message, "properties", None)
        topic = getattr(props, "ResponseTopic", None) if props is not None else None
        if not topic:
            return
        out = Properties(PacketTypes.PUBLISH)
        correlation = getattr(props, "CorrelationData", None)
        if correlation is not None:
            out.CorrelationData = correlation
        self.client.publish(topic, json.dumps({"status": status, **body}, separators=(",", ":")), qos=1, properties=out)


def _refusal(status: int, rule: str, detail: str) -> tuple[int, dict[str, Any]]:
    return status, refusal_body(rule, detail)


def _user_property(message: mqtt.MQTTMessage, name: str) -> str | None:
    props = getattr(message, "properties", None)
    for key, value in getattr(props, "UserProperty", None) or []:
        if key == name:
            return value
    return None


def with_mqtt(app, url: str, client_id: str | None = None, session_expiry_s: int = SESSION_EXPIRY_S):
    """``app`` (from :func:`~.app.create_app`) that also ingests from the MQTT broker at ``url``.

    The bridge starts after the collector (registry, log) and stops before it, so every
    message in hand is committed and acknowledged before the log closes.
    """
    from contextlib import asynccontextmanager

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with inner(a) as state:
            bridge = MqttBridge(url, a.state.collector, asyncio.get_running_loop(),
                                client_id or f"gridtwin-collector-{uuid.uuid5(uuid.NAMESPACE_URL, str(a.state.collector.collector_dir)).hex[:12]}",
                                session_expiry_s)
            await bridge.start()
            a.state.mqtt = bridge
            try:
                yield state
            finally:
                await bridge.stop()

    app.router.lifespan_context = lifespan
    return app
