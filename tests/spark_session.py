"""The one Spark session of the test run (local mode), shared by the Spark test modules.

Import the fixture into a test module: ``from spark_session import spark``. Without Java the
tests are skipped with the reason, except under ``CI=true``, where that is a failure. The
session is created once (``getOrCreate`` returns the running one to every module) and
stopped at the end of the run.
"""

from __future__ import annotations

import os
import shutil

import pytest

from gridtwin_lib import spark_features


@pytest.fixture(scope="session")
def spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        reason = "Java not found (apt-get install default-jdk-headless); Spark local mode needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    session = spark_features.session("local[2]", "gridtwin-tests", shuffle_partitions=2,
                                      spark__ui__enabled="false", spark__sql__adaptive__enabled="false")
    yield session
    session.stop()
