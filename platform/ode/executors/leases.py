"""A worker's lease on one stack: one run of a stack at a time, whatever the distributed engine delivers.

    leases = open_leases("dynamodb://ode-registry?region=eu-west-1")
    lease = leases.acquire("dev.orders", holder={"host": ..., "pid": ...}, seconds=60)   # or DuplicateDeliveryError
    leases.renew(lease)                                                                  # every third of its time
    leases.release(lease)

A distributed engine may deliver a task twice (Dask retries a task whose worker it believes dead, a CI system
re-runs a job): the second delivery finds the stack leased and is refused, naming the holder, so a stack never runs
twice at once. A worker renews its lease while it works; one that dies stops renewing, and its lease runs out after
``seconds``: the next run's delivery takes it then. Expiry is judged against the clock of the reader, so workers'
clocks must agree to well within a lease (NTP does).

Where the leases live: a DynamoDB registry's own table (items ``pk = STACKLEASE#<stack>``, ``sk = LEASE``, apart from
the registry's records, which the coordinator alone writes; its ``ttl`` attribute lets DynamoDB drop stale ones), or
a SQLite file for workers that share this machine (``dask+local://``).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .. import aws_clients
from ..errors import UsageError
from ..execution.executor import DuplicateDeliveryError


@dataclass(frozen=True)
class Lease:
    """A stack lease held by this process: ``token`` proves it is ours when renewing or releasing it."""

    stack: str
    token: str
    holder: dict[str, Any]
    seconds: float


class LeaseLost(Exception):
    """Renewing found the lease gone or taken: the work under it must stop."""


class StackLeases(Protocol):
    """Where stack leases are taken. Each method is atomic against every other process using the same store."""

    def acquire(self, stack: str, holder: dict[str, Any], seconds: float) -> Lease:
        """Take ``stack``'s lease for ``seconds``; :class:`DuplicateDeliveryError` naming the holder while another
        live lease holds it."""

    def renew(self, lease: Lease) -> None:
        """Extend ``lease`` by its ``seconds`` from now; :class:`LeaseLost` when it is no longer ours."""

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up (nothing when it is no longer ours)."""

    def holder(self, stack: str) -> dict[str, Any] | None:
        """Who holds ``stack``'s live lease (with ``expires_epoch``), or None."""

    def close(self) -> None:
        """Release connections."""


def _refused(stack: str, holder: dict[str, Any], expires: float) -> DuplicateDeliveryError:
    who = f"{holder.get('host', '?')} pid {holder.get('pid', '?')}"
    if holder.get("build_id"):
        who = f"build {holder['build_id']}"
    run = f", run {holder.get('run_id')}" if holder.get("run_id") is not None else ""
    left = max(0.0, expires - time.time())
    return DuplicateDeliveryError(stack, f"refused: the stack is leased by {who}{run} for {left:.0f} s more "
                                         "(another delivery of this task runs there, or ran on a worker that died "
                                         "and whose lease has not run out yet); one run of a stack at a time")


class SqliteLeases:
    """Stack leases in a SQLite file: for workers on one machine."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS stack_leases (stack TEXT PRIMARY KEY, token TEXT NOT NULL, "
                       "holder TEXT NOT NULL, expires_epoch REAL NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        return _Tx(db)  # type: ignore[return-value]

    def acquire(self, stack: str, holder: dict[str, Any], seconds: float) -> Lease:
        token = secrets.token_hex(8)
        with self._db() as db:
            row = db.execute("SELECT holder, expires_epoch FROM stack_leases WHERE stack = ?", (stack,)).fetchone()
            if row is not None and float(row[1]) > time.time():
                raise _refused(stack, json.loads(row[0]), float(row[1]))
            db.execute("INSERT OR REPLACE INTO stack_leases VALUES (?, ?, ?, ?)",
                       (stack, token, json.dumps(holder), time.time() + seconds))
        return Lease(stack, token, holder, seconds)

    def renew(self, lease: Lease) -> None:
        with self._db() as db:
            done = db.execute("UPDATE stack_leases SET expires_epoch = ? WHERE stack = ? AND token = ?",
                              (time.time() + lease.seconds, lease.stack, lease.token))
            if done.rowcount != 1:
                raise LeaseLost(f"{lease.stack}: its lease is no longer this worker's")

    def release(self, lease: Lease) -> None:
        with self._db() as db:
            db.execute("DELETE FROM stack_leases WHERE stack = ? AND token = ?", (lease.stack, lease.token))

    def holder(self, stack: str) -> dict[str, Any] | None:
        with self._db() as db:
            row = db.execute("SELECT holder, expires_epoch FROM stack_leases WHERE stack = ?", (stack,)).fetchone()
        if row is None or float(row[1]) <= time.time():
            return None
        return {**json.loads(row[0]), "expires_epoch": float(row[1])}

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _Tx:
    """``with`` a connection in autocommit mode: one ``BEGIN IMMEDIATE`` transaction (a write lock at once, so two
    processes acquiring at the same time are serialized)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


class DynamoLeases:
    """Stack leases as items of the registry's DynamoDB table (conditional writes: absent or expired to take one,
    ours to renew or release)."""

    def __init__(self, table: str, region: str | None):

        self.table = table
        self.client = aws_clients.client("dynamodb", region)

    @staticmethod
    def _key(stack: str) -> dict[str, Any]:
        return {"pk": {"S": f"STACKLEASE#{stack}"}, "sk": {"S": "LEASE"}}

    def _refused_by(self, stack: str) -> DuplicateDeliveryError:
        found = self.holder(stack)
        if found is None:  # it ran out between the write and this read: say so the same way
            return DuplicateDeliveryError(stack, "refused: another delivery took the stack's lease just now")
        return _refused(stack, found, float(found.get("expires_epoch", 0)))

    def acquire(self, stack: str, holder: dict[str, Any], seconds: float) -> Lease:
        from botocore.exceptions import ClientError

        token = secrets.token_hex(8)
        now = time.time()
        item = {**self._key(stack), "token": {"S": token}, "holder": {"S": json.dumps(holder)},
                "expires_epoch": {"N": str(now + seconds)}, "ttl": {"N": str(int(now + seconds) + 86400)}}
        try:
            self.client.put_item(TableName=self.table, Item=item,
                                 ConditionExpression="attribute_not_exists(pk) OR expires_epoch < :now",
                                 ExpressionAttributeValues={":now": {"N": str(now)}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise self._refused_by(stack) from None
            raise
        return Lease(stack, token, holder, seconds)

    def renew(self, lease: Lease) -> None:
        from botocore.exceptions import ClientError

        until = time.time() + lease.seconds
        try:
            self.client.update_item(
                TableName=self.table, Key=self._key(lease.stack), ConditionExpression="#t = :t",
                UpdateExpression="SET expires_epoch = :e, #ttl = :ttl",
                ExpressionAttributeNames={"#t": "token", "#ttl": "ttl"},
                ExpressionAttributeValues={":t": {"S": lease.token}, ":e": {"N": str(until)},
                                           ":ttl": {"N": str(int(until) + 86400)}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise LeaseLost(f"{lease.stack}: its lease is no longer this worker's") from None
            raise

    def release(self, lease: Lease) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_item(TableName=self.table, Key=self._key(lease.stack), ConditionExpression="#t = :t",
                                    ExpressionAttributeNames={"#t": "token"},
                                    ExpressionAttributeValues={":t": {"S": lease.token}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def holder(self, stack: str) -> dict[str, Any] | None:
        got = self.client.get_item(TableName=self.table, Key=self._key(stack), ConsistentRead=True).get("Item")
        if not got or float(got["expires_epoch"]["N"]) <= time.time():
            return None
        return {**json.loads(got["holder"]["S"]), "expires_epoch": float(got["expires_epoch"]["N"])}

    def close(self) -> None:
        pass


def open_leases(url: str) -> StackLeases:
    """The lease store ``url`` names: ``dynamodb://TABLE?region=R`` or ``sqlite:///PATH``."""
    parts = urlsplit(url)
    if parts.scheme == "dynamodb":
        from urllib.parse import parse_qs

        region = parse_qs(parts.query).get("region", [None])[-1]
        return DynamoLeases(parts.netloc, region)
    if parts.scheme == "sqlite":
        return SqliteLeases(Path(parts.path))
    raise UsageError(f"task: lease.url {url!r}: expected dynamodb://TABLE?region=R or sqlite:///PATH")


class Heartbeat:
    """Renews a lease every third of its time from a thread; ``lost`` is set (and ``on_lost`` called once) when a
    renewal finds the lease no longer ours or cannot reach the store for the whole lease."""

    def __init__(self, leases: StackLeases, lease: Lease, on_lost: Any = None):
        self.leases, self.lease, self.on_lost = leases, lease, on_lost
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ode-lease-{lease.stack}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.lease.seconds / 3):
            try:
                self.leases.renew(self.lease)
                last = time.monotonic()
            except LeaseLost as exc:
                self._lose(str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - a store that does not answer: the lease may run out
                if time.monotonic() - last >= self.lease.seconds:
                    self._lose(f"{self.lease.stack}: its lease could not be renewed for {self.lease.seconds:g} s "
                               f"({type(exc).__name__})")
                    return

    def _lose(self, why: str) -> None:
        self.lost = why
        if self.on_lost is not None:
            self.on_lost(why)
