"""Every boto3 client ode itself makes (the DynamoDB registry, SSM outputs, lifecycle events, and any AWS call the
platform adds), made in one place so that no call waits long on an endpoint that does not answer.

    from ode.aws_clients import client

    ssm = client("ssm", region="eu-west-1")

**Bounded calls.** Each client has a connect timeout, a read timeout and botocore's ``standard`` retry mode capped at
a few attempts, so one call to an endpoint that accepts connections and never answers gives up after about
``MAX_ATTEMPTS * READ_TIMEOUT_S`` seconds plus a little backoff, well under a minute (botocore's defaults are 60 s
and, in ``legacy`` mode, up to 5 attempts; the DynamoDB registry used 8). ``ODE_AWS_CONNECT_TIMEOUT``,
``ODE_AWS_READ_TIMEOUT`` (seconds) and ``ODE_AWS_MAX_ATTEMPTS`` change the figures for a slow link.

**An endpoint that went silent is not asked again at once.** When a call timed out after all its attempts, the
endpoint is left alone by every client of this process for :data:`QUIET_S` seconds: a call to it fails at once with
an :func:`endpoint_silent_error`, a :class:`botocore.exceptions.BotoCoreError`, so the callers' usual error paths
handle it. A run that publishes after each of its stacks thus waits on a dead endpoint once, not once per stack.
Only timeouts count: an endpoint that refuses connections answers quickly enough.

**Endpoints** are boto3's own choice: ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` (moto's server,
LocalStack) work as boto3 documents them; nothing here passes an ``endpoint_url``.

boto3 and botocore are imported inside the functions: ``import ode`` loads neither.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from .errors import UsageError

#: Seconds to open a connection.
CONNECT_TIMEOUT_S = 5.0
#: Seconds to wait for a byte of the answer: an AWS API that has not started to answer by then will not.
READ_TIMEOUT_S = 8.0
#: Attempts per call, the first included (botocore's ``standard`` mode backs off up to 1 s, then 2 s, between them).
MAX_ATTEMPTS = 3
#: Seconds an endpoint that timed out is left alone by this process.
QUIET_S = 600.0

_silent: dict[str, float] = {}
_silent_lock = threading.Lock()


def _number(variable: str, default: float, *, whole: bool = False, low: float, high: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high) or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number of seconds"
        raise UsageError(f"{variable}={text!r}: expected {kind} from {low:g} to {high:g}")
    return value


def limits() -> dict[str, float]:
    """The connect and read timeouts (seconds) and attempts every client gets: the defaults above, or the
    ``ODE_AWS_*`` variables (a bad value is a :class:`~ode.errors.UsageError` naming the variable)."""
    return {"connect_timeout": _number("ODE_AWS_CONNECT_TIMEOUT", CONNECT_TIMEOUT_S, low=0.1, high=300),
            "read_timeout": _number("ODE_AWS_READ_TIMEOUT", READ_TIMEOUT_S, low=0.1, high=300),
            "max_attempts": _number("ODE_AWS_MAX_ATTEMPTS", MAX_ATTEMPTS, whole=True, low=1, high=10)}


def config() -> Any:
    """The ``botocore.config.Config`` of every client ode makes: timeouts and a capped ``standard`` retry."""
    from botocore.config import Config  # deferred: see the module's docstring

    figures = limits()
    return Config(connect_timeout=figures["connect_timeout"], read_timeout=figures["read_timeout"],
                  # total_max_attempts counts the first attempt; botocore's max_attempts would not
                  retries={"mode": "standard", "total_max_attempts": int(figures["max_attempts"])})


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client for ``service`` in ``region`` (None: boto3's own choice, ``AWS_REGION`` and the config file),
    with bounded calls and the silent-endpoint guard. botocore's errors (no region, say) are raised as they are."""
    import boto3  # deferred: see the module's docstring

    made = boto3.session.Session(region_name=region).client(service, config=config())
    made.meta.events.register("before-call", _refuse_silent)
    made.meta.events.register("after-call-error", _note_timeout)
    return made


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased: what one endpoint is known by."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _refuse_silent(params: dict[str, Any] | None = None, **_: Any) -> None:
    origin = _origin(str((params or {}).get("url", "")))
    with _silent_lock:
        until = _silent.get(origin)
    if until is not None and time.monotonic() < until:
        raise endpoint_silent_error(origin, until - time.monotonic())


def _note_timeout(exception: BaseException | None = None, **_: Any) -> None:
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    if isinstance(exception, ReadTimeoutError | ConnectTimeoutError):
        origin = _origin(str(exception.kwargs.get("endpoint_url", "")))
        with _silent_lock:
            _silent[origin] = time.monotonic() + QUIET_S


@functools.cache
def _silent_class() -> Any:
    from botocore.exceptions import BotoCoreError

    class EndpointSilentError(BotoCoreError):
        """An endpoint that timed out earlier in this process: not asked again yet."""

        fmt = ("{endpoint} did not answer earlier in this run (timed out); not asked again for another "
               "{seconds:.0f} s")

    return EndpointSilentError


def endpoint_silent_error(endpoint: str, seconds: float) -> Exception:
    """The error a call to a silent endpoint fails with at once (a ``BotoCoreError``)."""
    return _silent_class()(endpoint=endpoint, seconds=max(0.0, seconds))


def is_silent(endpoint: str) -> bool:
    """Whether calls to ``endpoint`` (a URL) are being refused at once, as it timed out recently."""
    with _silent_lock:
        until = _silent.get(_origin(endpoint))
    return until is not None and time.monotonic() < until


def forget_silent() -> None:
    """Ask every endpoint again (for long-lived processes that know the network is back, and for tests)."""
    with _silent_lock:
        _silent.clear()


def endpoint_of(made: Any) -> str:
    """The endpoint a client calls (``scheme://host[:port]``), as boto3 resolved it without any network call."""
    return _origin(str(made.meta.endpoint_url))
