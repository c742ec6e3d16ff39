"""moto's server on 127.0.0.1 for the tests of the platform's own AWS calls (registry, SSM, EventBridge).

Import the fixtures into a test module::

    from tests.moto_server import aws, moto_server  # noqa: F401  (pytest fixtures)

``moto_server`` (session) starts one ThreadedMotoServer on a free port and stops it at the end. ``aws`` (per test)
empties it (``POST /moto-api/reset``: moto's state is global to the process) and points boto3 at it through the
standard ``AWS_ENDPOINT_URL``, with fake credentials, so that nothing can reach a real account. Subprocesses
started by a test inherit those variables.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"

#: Variables that could send a client elsewhere than the test server, or to a real profile.
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint (``http://127.0.0.1:PORT``) of a moto server that lives for the test session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty moto server as the only AWS this test (and its subprocesses) can reach; returns its endpoint."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        response.read()
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # a proxy from the environment must not see the test server's traffic
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # Where boto3 would otherwise look for shared files: nowhere real.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_server
