"""Fixtures for the database servers on the machine (PostgreSQL, MariaDB).

A test that needs a server takes its fixture. When the server is absent the test
is skipped with the reason, except under ``CI=true``, where CI promises the
servers and an absent one is a failure. Every test gets its own namespace (a
PostgreSQL schema, a MariaDB database) named ``gt_<run>_<n>`` and dropped after,
so parallel runs and leftovers never collide.

Import the fixtures into a test module: ``from services import postgres_url, ...``.
Addresses come from ``GRIDTWIN_TEST_POSTGRES`` / ``GRIDTWIN_TEST_MARIADB``
(SQLAlchemy URLs of a database the tests may create schemas in), by default
the machines' ``127.0.0.1:5432/test`` (trust auth) and ``127.0.0.1:3306/test``
(root, no password).
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
import sqlalchemy as sa

RUN = uuid.uuid4().hex[:8]
_counter = itertools.count(1)
POSTGRES_CANDIDATES = [
    os.environ.get("GRIDTWIN_TEST_POSTGRES", ""),
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
]
MARIADB_CANDIDATES = [os.environ.get("GRIDTWIN_TEST_MARIADB", ""), "mysql+pymysql://root@127.0.0.1:3306/test"]


def unavailable(service: str, reason: str) -> None:
    """Skip (or, under CI=true, fail) because ``service`` cannot be used."""
    message = f"{service} not available ({reason}); start it (see README 'Services') or set CI=false"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires {message}")
    pytest.skip(message)


def first_reachable(service: str, candidates: list[str]) -> sa.URL:
    """The first candidate URL that accepts a connection, else skip/fail."""
    errors = []
    for url in filter(None, candidates):
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return engine.url
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
            errors.append(f"{engine.url.render_as_string(hide_password=True)}: {str(exc).strip().splitlines()[0][:120]}")
        finally:
            engine.dispose()
    unavailable(service, "; ".join(errors) or "no candidate URL")


def unique_name() -> str:
    return f"gt_{RUN}_{next(_counter)}"


@pytest.fixture(scope="session")
def postgres_server() -> sa.URL:
    """URL of the PostgreSQL database tests may create schemas in."""
    return first_reachable("PostgreSQL 127.0.0.1:5432", POSTGRES_CANDIDATES)


@pytest.fixture(scope="session")
def mariadb_server() -> sa.URL:
    """URL of a MariaDB/MySQL server where tests may create databases."""
    return first_reachable("MariaDB 127.0.0.1:3306", MARIADB_CANDIDATES)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL schema (first on the search_path), dropped after the test."""
    schema = unique_name()
    admin = sa.create_engine(postgres_server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_server.update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def mariadb_url(mariadb_server) -> str:
    """A fresh, empty MariaDB database, dropped after the test."""
    name = unique_name()
    admin = sa.create_engine(mariadb_server)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    yield mariadb_server.set(database=name).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE `{name}`"))
    admin.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request) -> str:
    """Each server in turn: a fresh namespace on PostgreSQL, then on MariaDB."""
    return request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mariadb_url")


@pytest.fixture
def postgres_database(postgres_server) -> str:
    """A fresh PostgreSQL database (e.g. an MLflow backend), dropped after the test."""
    name = unique_name()
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield postgres_server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
