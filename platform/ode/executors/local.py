"""``--executor local`` (the default): each stack's operation runs on one of this process's scheduler threads."""

from __future__ import annotations

from ..execution.executor import LocalExecutor
from .opening import ExecutorSetup, parse_url


def open_local(url: str, setup: ExecutorSetup) -> LocalExecutor:
    """The ``local`` entry point: ``local`` or ``local://?timeout=SECONDS``."""
    parsed = parse_url(url)
    parsed.refuse_unknown(set())
    return LocalExecutor(setup.engine, timeout_s=parsed.timeout_s)
