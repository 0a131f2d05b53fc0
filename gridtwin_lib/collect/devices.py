"""The device registry: who may post readings, with which key.

A device is a name (``esp8266-3c71bf``) and an API key ``<key id>.<secret>``, both parts
from :func:`secrets.token_urlsafe`. The key is shown once, when the device is added; the
registry keeps only the key id (to find the device without trying every hash), a random
per-device salt and ``scrypt(secret, salt)``. A revoked device keeps its row (so its name is
not reused by accident) and gets 403 instead of 401.

The registry is a SQLite file, ``devices.sqlite`` in the collector directory
(:func:`collector_dir`). The CLI writes it; the running collector reads it and notices changes
by the file's modification time and size, so ``gridtwin devices revoke`` takes effect on the next
request without a restart. Verified keys are cached in memory (by their SHA-256) so a request
costs one hash, not one scrypt (about 70 ms on the reference VM).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import config
from ..errors import InputError
from ..schema import DEVICE_NAME, DEVICE_NAME_RULE

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # 16 MiB, ~70 ms per derivation
_CACHE_MAX = 10_000  # verified keys kept in memory


def collector_dir() -> Path:
    """The collector's directory (device registry, write-ahead log): next to the store.

    ``$GRIDTWIN_COLLECTOR_DIR`` overrides it; otherwise ``<store>/../collector``, so each
    workspace (``GRIDTWIN_WORKSPACE``) has its own devices and log.
    """
    env = os.environ.get("GRIDTWIN_COLLECTOR_DIR")
    return Path(env).expanduser().resolve() if env else config.store_dir().parent / "collector"


@dataclass(frozen=True)
class Device:
    """A registered device as listed (never with its key)."""

    name: str
    key_id: str
    created_at: str
    revoked_at: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "revoked": self.revoked}


@dataclass(frozen=True)
class AuthResult:
    """Outcome of checking a key: ``status`` is ``ok``, ``unknown`` (401) or ``revoked`` (403)."""

    status: str
    device: str | None = None


def _derive(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


class DeviceRegistry:
    """Add, list, revoke devices and check keys; one SQLite file under ``directory``."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else collector_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "devices.sqlite"
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS devices ("
            " name TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, salt BLOB NOT NULL, key_hash BLOB NOT NULL,"
            " created_at TEXT NOT NULL, revoked_at TEXT)"
        )
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self._version: tuple | None = None  # file signature the key table was read at
        self._checked_at = 0.0
        self._by_key_id: dict[str, tuple[str, bytes, bytes, bool]] = {}
        self._verified: dict[bytes, str] = {}  # sha256(key) -> key id

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ admin

    def add(self, name: str) -> str:
        """Register ``name`` and return its API key (shown once; only a salted hash is kept)."""
        if not DEVICE_NAME.fullmatch(name or ""):
            raise InputError(f"device name {name!r} is not valid; use {DEVICE_NAME_RULE}")
        key_id, secret = secrets.token_urlsafe(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        try:
            self._conn.execute(
                "INSERT INTO devices (name, key_id, salt, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, key_id, salt, _derive(secret, salt), _now()),
            )
        except sqlite3.IntegrityError:
            existing = self._device(name)
            state = " (revoked)" if existing and existing.revoked else ""
            raise InputError(f"device {name!r} is already registered{state}; choose another name") from None
        self._version = None
        return f"{key_id}.{secret}"

    def list(self) -> list[Device]:
        rows = self._conn.execute("SELECT name, key_id, created_at, revoked_at FROM devices ORDER BY name").fetchall()
        return [Device(*row) for row in rows]

    def revoke(self, name: str) -> Device:
        """Revoke ``name``: its key gets 403 from now on. Revoking twice is harmless."""
        self._conn.execute("UPDATE devices SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_now(), name))
        self._version = None
        device = self._device(name)
        if device is None:
            known = ", ".join(d.name for d in self.list()) or "none"
            raise InputError(f"no device named {name!r}; registered devices: {known} (gridtwin devices list)")
        return device

    def _device(self, name: str) -> Device | None:
        row = self._conn.execute("SELECT name, key_id, created_at, revoked_at FROM devices WHERE name = ?", (name,)).fetchone()
        return Device(*row) if row else None

    # ------------------------------------------------------------------ authentication

    def lookup(self, key: str | None) -> tuple[AuthResult | None, tuple[str, bytes, bytes] | None]:
        """Fast part of :meth:`authenticate`: a result, or the (secret, salt, hash) still to verify."""
        if not key:
            return AuthResult("unknown"), None
        self._refresh()
        digest = key_digest(key)
        key_id, _, secret = key.partition(".")
        entry = self._by_key_id.get(key_id)
        if entry is None or not secret:
            return AuthResult("unknown"), None
        name, salt, key_hash, revoked = entry
        if self._verified.get(digest) == key_id:
            return AuthResult("revoked" if revoked else "ok", name), None
        return None, (secret, salt, key_hash)

    def remember(self, key: str) -> AuthResult:
        """Cache a key that :func:`verify_secret` accepted and return its device's status."""
        digest = key_digest(key)
        key_id = key.partition(".")[0]
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[digest] = key_id
        name, _, _, revoked = self._by_key_id[key_id]
        return AuthResult("revoked" if revoked else "ok", name)

    def authenticate(self, key: str | None) -> AuthResult:
        """Check a key (synchronously; the collector runs the scrypt step in a thread)."""
        result, pending = self.lookup(key)
        if result is not None:
            return result
        return self.remember(key) if verify_secret(*pending) else AuthResult("unknown")

    def _refresh(self) -> None:
        """Reload the key table when the file changed (the CLI added or revoked a device).

        Two ``stat`` calls per request; a SQLite query (``PRAGMA data_version``) costs about
        0.3 ms on a WAL-mode file, more than the rest of the request.
        """
        signature = tuple(_stat(p) for p in (self.path, self._wal_path))
        now = time.monotonic()
        if now - self._checked_at > 1.0:  # file times are coarse (a few ms): a query once a second as well
            signature += (self._conn.execute("PRAGMA data_version").fetchone()[0],)
            self._checked_at = now
        elif self._version is not None:
            signature += self._version[2:]
        if signature == self._version:
            return
        rows = self._conn.execute("SELECT key_id, name, salt, key_hash, revoked_at FROM devices").fetchall()
        self._by_key_id = {k: (n, s, h, r is not None) for k, n, s, h, r in rows}
        self._version = signature


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def key_digest(key: str) -> bytes:
    """SHA-256 of a presented key: what the in-memory caches are keyed by (never the key itself)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def verify_secret(secret: str, salt: bytes, key_hash: bytes) -> bool:
    """Constant-time comparison of ``scrypt(secret, salt)`` with the stored hash."""
    return hmac.compare_digest(_derive(secret, salt), key_hash)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
