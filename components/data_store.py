"""The ``data-store`` kind: the buckets, tables, secrets and queues a context provides, and nothing that runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from . import storage
from .common import ContextArgs
from .monitoring import Monitor


@dataclass(frozen=True)
class DataStoreArgs(ContextArgs):
    pass


class DataStore(pulumi.ComponentResource):
    """Data only. Provides ``bucket`` (name, arn), ``table`` (name, arn), ``secret`` (name, arn) and ``queue``
    (name, url, arn) interfaces."""

    interfaces: dict[str, pulumi.Output[dict[str, Any]]]

    def __init__(self, name: str, args: DataStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ode:index:DataStore", name, {}, opts)
        args.validate("data-store")
        monitor = Monitor.of(args, self)
        self.interfaces, _, _ = storage.provided_data(args, self, monitor, queues=True)
        monitor.dashboard()
        self.register_outputs({"interfaces": self.interfaces})
