"""The registry in one DynamoDB table, for teams and CI runners that share environments.

    from ode.registry.dynamodb import DynamoDBRegistry, create_table

    create_table("ode-registry", region="eu-west-1")           # ode registry init
    registry = DynamoDBRegistry("ode-registry", region="eu-west-1")

**One table, keyed by partition.** Every read on the hot path is a GetItem or a Query of one partition; nothing
scans the table:

============================  ===================  ==========================================================
item                          pk                   sk
============================  ===================  ==========================================================
environment                   ``ENVS``             ``ENV#<name>``  (one partition: ``environments()`` is a Query)
stack                         ``ENV#<env>``        ``STACK#<context>``
run                           ``ENV#<env>``        ``RUN#<id, 12 digits>``
lock (a lease)                ``ENV#<env>``        ``LOCK``
where a stack last ran        ``ENV#<env>``        ``WORKER#<context>``
a worker's stack lease        ``STACKLEASE#<stack>``  ``LEASE``  (written by workers: ``ode.executors.leases``)
run id counter                ``META``             ``RUN_COUNTER``
schema version                ``META``             ``SCHEMA``
============================  ===================  ==========================================================

**Locks are leases.** ``begin_run`` writes the lock item with a condition (absent, or expired), together with the
run record, in one transaction. The lease names its owner, host, pid, run id and expiry; a heartbeat thread renews
it every third of its time to live while the run is alive, so a killed runner's lease simply runs out and the next
runner takes it over (marking the old run ``abandoned``). Breaking a live lease needs ``force_unlock`` *and*
``force``: a live lease means a live runner somewhere. Expiry is judged by the reader's clock against the one the
holder wrote, so runners' clocks must agree to well within a lease's time to live (60 s by default; NTP does).

**Fencing.** While this object holds an environment's lease (from ``begin_run`` to ``end_run``), every write it
makes about that environment is one ``TransactWriteItems``: a ``ConditionCheck`` that the lock item still carries
the run's id (the fencing token), and the write. A runner paused past its lease (a GC pause, a frozen VM) whose
lease another runner took over therefore writes nothing when it wakes: the transaction is cancelled and
:class:`LeaseLostError` names the successor (the lock item as it is, ``ReturnValuesOnConditionCheckFailure``). A
heartbeat that cannot renew the lease records the same error, which :meth:`DynamoDBRegistry.lease_lost` reports.

**Endpoints and bounded calls.** The client comes from :mod:`ode.aws_clients`: boto3 picks the endpoint, so
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_DYNAMODB`` point it at moto's server or LocalStack; every call has connect
and read timeouts and a few attempts of botocore's ``standard`` retry mode, so a table whose endpoint never answers
is one :class:`RegistryError` within well under a minute.

**Opening never guesses.** A missing table is created on first use, as ``ode registry init`` does, except by
commands that only read (``create=False``): those say the table is not there (:class:`RegistryNotFoundError`),
naming the region and endpoint looked at, and create nothing: a wrong region is not a new, empty registry.

Secret values never reach the table: like the SQLite registry, a stack keeps its secret outputs by name only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from .. import aws_clients
from ..clock import Clock, iso, utcnow
from ..errors import UsageError
from ..status import EnvironmentStatus, RunStatus, StackStatus
from .errors import LeaseLostError, LockedError, RegistryError, RegistryNotFoundError
from .records import (
    EnvironmentRecord,
    LockInfo,
    RegistryIdentity,
    RunRecord,
    StackRecord,
    holder,
    process_alive,
)

log = logging.getLogger(__name__)

#: The layout of the table's items; bumped when it changes. Newer tables are refused.
SCHEMA_VERSION = 1

#: A lease lives this long unless renewed; the heartbeat renews it every third of that.
DEFAULT_LEASE_S = 60.0
_ENVS = "ENVS"
_META = "META"


@dataclass(frozen=True)
class Lease:
    """Who holds an environment's lock, until when."""

    env: str
    holder: str
    owner: str
    host: str
    pid: int
    run_id: int
    command: str
    acquired_at: str
    expires_at: str
    expired: bool
    #: The expiry as written (epoch seconds): a takeover is conditional on it, so a renewed lease is not taken.
    expires_epoch: float = 0.0

    def describe(self) -> str:
        """One line for ``ode status``: the holder, its run and the lease's expiry."""
        state = "expired" if self.expired else "until"
        return f"{self.holder} (run {self.run_id}, `{self.command}` since {self.acquired_at}; lease {state} " \
               f"{self.expires_at})"


class LeaseHeldError(LockedError):
    """A live lease holds the environment: another runner is working on it."""

    def __init__(self, lease: Lease, *, force_refused: bool = False):
        self.lease = lease
        self.env, self.holder, self.command, self.since = lease.env, lease.holder, lease.command, lease.acquired_at
        hint = ("its lease is live: the runner is still renewing it. --force-unlock breaks only an expired lease; "
                "add --force to break a live one" if force_refused else
                f"wait for it to finish; if that runner is gone, its lease runs out at {lease.expires_at}")
        super(LockedError, self).__init__(
            f"environment {lease.env!r} is locked by {lease.holder} (run {lease.run_id}, `{lease.command}`, since "
            f"{lease.acquired_at}): {hint}")


def parse_url(url: str) -> tuple[str, str | None]:
    """``dynamodb://TABLE?region=R`` -> (TABLE, R or None)."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb" or not parts.netloc or parts.path not in ("", "/"):
        raise UsageError(f"--registry {url}: expected dynamodb://TABLE?region=REGION")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"region", "lease"})
    if unknown:
        raise UsageError(f"--registry {url}: unknown parameter {unknown[0]!r} (known: region, lease)")
    region = query.get("region", [None])[-1]
    return parts.netloc, region


def lease_seconds(url: str) -> float:
    """``?lease=SECONDS`` of a ``dynamodb://`` URL: a lock's time to live (default 60 s; at least 1)."""
    text = parse_qs(urlsplit(url).query).get("lease", [None])[-1]
    if text is None:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 86400:
        raise UsageError(f"--registry {url}: lease={text} must be a number of seconds from 1 to 86400")
    return value


def open_dynamodb(url: str, state_dir: Path, *, create: bool = True) -> DynamoDBRegistry:
    """The ``dynamodb`` entry point of ``ode.registries``; ``state_dir`` is not used (nothing is kept locally).
    ``?lease=SECONDS`` sets how long a lock outlives its last heartbeat (a killed runner's, say). With
    ``create=False`` a missing table is a :class:`RegistryNotFoundError` and nothing is created."""
    table, region = parse_url(url)
    return DynamoDBRegistry(table, region=region, lease_s=lease_seconds(url), create=create)


def _client(region: str | None) -> Any:
    try:
        return aws_clients.client("dynamodb", region)
    except BotoCoreError as exc:
        raise RegistryError(f"dynamodb registry: {exc} (give ?region=REGION in the URL or set AWS_REGION)") from None


#: Hosts of AWS's own endpoints: there a table's ARN names it wherever it is reached from. Elsewhere (moto,
#: LocalStack) two endpoints may hand out the same ARN for different tables.
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def _is_aws(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    return host.endswith(_AWS_HOSTS)


# -- item encoding -------------------------------------------------------------------------------------------------

def _enc(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    raise TypeError(f"cannot store {type(value).__name__}")


def _item(**fields: Any) -> dict[str, Any]:
    """A DynamoDB item from plain values; None fields are left out (absent == NULL)."""
    return {k: _enc(v) for k, v in fields.items() if v is not None}


def _dec(attr: dict[str, Any]) -> Any:
    (kind, value), = attr.items()
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() and "." not in value else float(number)
    if kind == "NULL":
        return None
    return value


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _dec(v) for k, v in item.items()}


def _stack_record(env: str, d: dict[str, Any]) -> StackRecord:
    duration = d.get("duration_s")
    return StackRecord(env=env, context=d["context"], status=d["status"], fingerprint=d.get("fingerprint"),
                       inputs=json.loads(d.get("inputs", "{}")), outputs=json.loads(d.get("outputs", "{}")),
                       secret_outputs=json.loads(d.get("secret_outputs", "[]")), engine=d.get("engine"),
                       simulated=bool(d.get("simulated", False)), started_at=d.get("started_at"),
                       finished_at=d.get("finished_at"), duration_s=None if duration is None else float(duration),
                       error=d.get("error"))


def _env_record(d: dict[str, Any]) -> EnvironmentRecord:
    contexts = d.get("contexts")
    return EnvironmentRecord(name=d["name"], base=d.get("base"), ephemeral=bool(d.get("ephemeral", False)),
                             owner=d.get("owner"), created_at=d.get("created_at", ""),
                             expires_at=d.get("expires_at"),
                             contexts=None if contexts is None else json.loads(contexts),
                             reuse=json.loads(d.get("reuse", "[]")),
                             status=d.get("status", EnvironmentStatus.ACTIVE))


def _run_record(d: dict[str, Any]) -> RunRecord:
    return RunRecord(id=int(d["run_id"]), env=d["env"], command=d["command"], engine=d["engine"],
                     holder=d["holder"], started_at=d["started_at"], finished_at=d.get("finished_at"),
                     status=d["status"])


def _env_pk(env: str) -> dict[str, Any]:
    return {"S": f"ENV#{env}"}


def _run_sk(run_id: int) -> dict[str, Any]:
    return {"S": f"RUN#{run_id:012d}"}


class _Heartbeat(threading.Thread):
    """Renews one lease every ``interval`` seconds until stopped, or until the lease is lost."""

    def __init__(self, registry: DynamoDBRegistry, env: str, run_id: int):
        super().__init__(name=f"ode-lease-{env}", daemon=True)
        self.registry, self.env, self.run_id = registry, env, run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.registry.lease_s / 3):
            try:
                if not self.registry.renew(self.env, self.run_id):
                    self.registry._lease_gone(self.env, self.run_id)
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                log.warning("could not renew the lease on %r: %s", self.env, exc)


class DynamoDBRegistry:
    """The registry in DynamoDB table ``table``. Thread-safe (boto3 clients are); every method is one atomic
    write or one partition read. ``lease_s`` is a lock's time to live; ``clock`` decides when a lease is expired.
    """

    def __init__(self, table: str, *, region: str | None = None, lease_s: float = DEFAULT_LEASE_S,
                 clock: Clock = utcnow, client: Any = None, create: bool = True):
        self.table = table
        self.region = region
        self.lease_s = lease_s
        self.clock = clock
        self.client = client or _client(region)
        #: API calls made by this registry (the benchmark's round trips).
        self.api_calls = 0
        self._count_lock = threading.Lock()
        self.client.meta.events.register("before-call.dynamodb.*", self._count)
        self._heartbeats: dict[tuple[str, int], _Heartbeat] = {}
        #: Environment -> the run whose lease this object holds (the fencing token of its writes), and what was
        #: found when that lease was lost. A lost lease's token stays until a new run: every later write about the
        #: environment is refused, even from a thread that was still at work.
        self._fences: dict[str, int] = {}
        self._lost: dict[str, LeaseLostError] = {}
        #: Whether opening it made the table: like the SQLite registry's file, a missing table is created on first
        #: use (the same settings as `ode registry init`) and the front end announces it in one line.
        self.created = False
        #: The table's ARN (from DescribeTable): its account, region and name, whatever URL spelled them.
        self.arn: str | None = None
        if not self._table_exists():
            if not create:
                raise RegistryNotFoundError(
                    f"{self.url}: no such table in region {self.client.meta.region_name} at "
                    f"{aws_clients.endpoint_of(self.client)} (check the table's name and region); nothing was "
                    "created: `ode registry init` or `ode up` creates it")
            create_table(table, region=region, client=self.client)
            self.created = True
            self._table_exists()
        self._check_schema()

    @property
    def url(self) -> str:
        return f"dynamodb://{self.table}" + (f"?region={self.region}" if self.region else "")

    def _count(self, **_: Any) -> None:
        with self._count_lock:
            self.api_calls += 1

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One API call on the table; AWS errors other than a failed condition become one-line RegistryErrors."""
        try:
            return getattr(self.client, operation)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            if code == "ResourceNotFoundException":
                raise RegistryError(f"{self.url}: no such table; create it with `ode registry init --registry "
                                    f"{self.url}`") from None
            raise RegistryError(f"{self.url}: {code}: {exc.response.get('Error', {}).get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise RegistryError(f"{self.url}: {exc}") from None

    def _lock_check(self, env: str, run_id: int) -> dict[str, Any]:
        """A transaction's check that run ``run_id`` still holds ``env``'s lease (the lock item as it is, if not)."""
        return {"ConditionCheck": {"TableName": self.table, "Key": {"pk": _env_pk(env), "sk": {"S": "LOCK"}},
                                   "ConditionExpression": "run_id = :fence",
                                   "ExpressionAttributeValues": {":fence": {"N": str(run_id)}},
                                   "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    def _write(self, env: str, operation: str, **params: Any) -> None:
        """One write about ``env`` (``put_item``, ``update_item`` or ``delete_item``), fenced while this object holds
        ``env``'s lease: :class:`LeaseLostError` when another run holds it now (nothing is written). A failed
        condition of the write itself raises ``ClientError``, as the plain call does."""
        if env in self._lost:
            raise self._lost[env]
        run_id = self._fences.get(env)
        if run_id is None:
            self._call(operation, **params)
            return
        kind = {"put_item": "Put", "update_item": "Update", "delete_item": "Delete"}[operation]
        try:
            self._transact([self._lock_check(env, run_id), {kind: {"TableName": self.table, **params}}])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            codes = [r.get("Code") for r in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                item = reasons[0].get("Item")
                raise self._lose(env, run_id, _plain(item) if item else None) from None
            if not codes:  # an endpoint that does not say why: look at the lock itself
                lease = self.lease(env)
                if lease is None or lease.run_id != run_id:
                    raise self._lease_gone(env, run_id) from None
            raise

    def _lose(self, env: str, run_id: int, lock: dict[str, Any] | None) -> LeaseLostError:
        """Remember (and return) that run ``run_id`` lost ``env``'s lease to the holder of ``lock`` (None: free
        again, and the successor, if any, is the first run after this one)."""
        if lock is None:
            try:
                lock = next((d for d in self._query(_env_pk(env), "RUN#") if int(d["run_id"]) > run_id), None)
            except RegistryError:
                lock = None
        error = (LeaseLostError(env, run_id) if lock is None else
                 LeaseLostError(env, run_id, lock.get("holder"), int(lock["run_id"]) if "run_id" in lock else None,
                                lock.get("command")))
        if self._fences.get(env) == run_id:
            self._lost.setdefault(env, error)
            return self._lost[env]
        return error

    def _lease_gone(self, env: str, run_id: int) -> LeaseLostError:
        """Record that run ``run_id`` lost ``env``'s lease (its heartbeat could not renew it, or a write found the
        lock item changed), naming who holds it now; returns the error that its next write raises."""
        try:
            lease = self.lease(env)
        except RegistryError:
            lease = None
        lock = None if lease is None or lease.run_id == run_id else {
            "holder": lease.holder, "run_id": lease.run_id, "command": lease.command}
        return self._lose(env, run_id, lock)

    def lease_lost(self, env: str) -> LeaseLostError | None:
        """The lost lease a fenced write or the heartbeat found on ``env``; None while it is held."""
        return self._lost.get(env)

    def _table_exists(self) -> bool:
        try:
            described = self._call("describe_table")
        except RegistryError as exc:
            if "no such table" in str(exc):
                return False
            raise
        self.arn = described.get("Table", {}).get("TableArn") or self.arn
        return True

    def identity(self) -> RegistryIdentity:
        """This table: its ARN (account, region, name) where AWS's endpoints serve it; with another endpoint (moto,
        LocalStack) that endpoint too. Known without a further call (the ARN came with opening)."""
        region = self.client.meta.region_name
        endpoint = aws_clients.endpoint_of(self.client)
        keys = {f"table:{endpoint}|{region}|{self.table}"}
        account = None
        if self.arn:
            keys.add(f"arn:{self.arn}" if _is_aws(endpoint) else f"arn:{endpoint}|{self.arn}")
            arn_parts = self.arn.split(":")
            account = arn_parts[4] if len(arn_parts) > 5 else None
        return RegistryIdentity(
            kind="dynamodb", where=f"table {self.table} in {region} at {endpoint}", keys=frozenset(keys),
            details={"table": self.table, "region": region, "endpoint": endpoint, "account": account,
                     "arn": self.arn})

    def _check_schema(self) -> None:
        got = self._call("get_item", Key={"pk": {"S": _META}, "sk": {"S": "SCHEMA"}}, ConsistentRead=True)
        version = int(_plain(got["Item"])["version"]) if "Item" in got else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise RegistryError(f"{self.url} was written by a newer ode (schema {version}, this one knows "
                                f"{SCHEMA_VERSION}): upgrade ode")

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def close(self) -> None:
        for beat in list(self._heartbeats.values()):
            beat.stopped.set()
        self._heartbeats.clear()

    def _query(self, pk: dict[str, Any], prefix: str) -> Iterator[dict[str, Any]]:
        """Every item of one partition whose sort key starts with ``prefix``, page by page."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": pk, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", **kwargs)
            for item in page.get("Items", []):
                yield _plain(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _now(self) -> str:
        return iso(self.clock()) or ""

    # -- environments --------------------------------------------------------------------------------------------

    def put_environment(self, record: EnvironmentRecord) -> None:
        """Insert or replace an environment's record."""
        now = self._now()
        self._write(record.name, "put_item", Item={"pk": {"S": _ENVS}, "sk": {"S": f"ENV#{record.name}"}, **_item(
            name=record.name, base=record.base, ephemeral=record.ephemeral, owner=record.owner,
            created_at=record.created_at or now, expires_at=record.expires_at,
            contexts=None if record.contexts is None else json.dumps(record.contexts),
            reuse=json.dumps(list(record.reuse)), status=record.status, updated_at=now)})

    def ensure_environment(self, name: str, base: str | None = None) -> None:
        """Record a long-lived environment on its first run (a no-op when it is known)."""
        now = self._now()
        try:
            self._write(name, "put_item", Item={"pk": {"S": _ENVS}, "sk": {"S": f"ENV#{name}"}, **_item(
                name=name, base=base, ephemeral=False, created_at=now, reuse="[]", status=EnvironmentStatus.ACTIVE,
                updated_at=now)},
                ConditionExpression="attribute_not_exists(pk)")
        except ClientError:
            pass  # already known

    def set_environment_status(self, name: str, status: str) -> None:
        """Change a known environment's status; an unknown one stays unknown."""
        try:
            self._write(name, "update_item", Key={"pk": {"S": _ENVS}, "sk": {"S": f"ENV#{name}"}},
                        UpdateExpression="SET #s = :s, updated_at = :now", ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeNames={"#s": "status"},
                       ExpressionAttributeValues={":s": {"S": status}, ":now": {"S": self._now()}})
        except ClientError:
            pass

    def environment(self, name: str) -> EnvironmentRecord | None:
        got = self._call("get_item", Key={"pk": {"S": _ENVS}, "sk": {"S": f"ENV#{name}"}}, ConsistentRead=True)
        return _env_record(_plain(got["Item"])) if "Item" in got else None

    def environments(self) -> list[EnvironmentRecord]:
        return sorted((_env_record(d) for d in self._query({"S": _ENVS}, "ENV#")), key=lambda e: e.name)

    def knows(self, env: str) -> bool:
        """Whether the registry has any record of ``env``: the environment itself, a stack, a run or a lease."""
        if self.environment(env) is not None:
            return True
        page = self._call("query", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={
            ":pk": _env_pk(env)}, Limit=1, ConsistentRead=True)
        return bool(page.get("Items"))

    # -- stacks --------------------------------------------------------------------------------------------------

    def stack(self, env: str, context: str) -> StackRecord | None:
        got = self._call("get_item", Key={"pk": _env_pk(env), "sk": {"S": f"STACK#{context}"}}, ConsistentRead=True)
        return _stack_record(env, _plain(got["Item"])) if "Item" in got else None

    def stacks(self, env: str) -> list[StackRecord]:
        return sorted((_stack_record(env, d) for d in self._query(_env_pk(env), "STACK#")),
                      key=lambda s: s.context)

    def mark_running(self, env: str, context: str, *, engine: str, started_at: str, run_id: int | None,
                     operation: str = "up") -> None:
        """Record that a stack's engine run starts, its fingerprint cleared first (a killed run is redone)."""
        status = StackStatus.DESTROYING if operation == "destroy" else StackStatus.RUNNING
        values: dict[str, Any] = {":s": {"S": status},
                                  ":e": {"S": engine}, ":t": {"S": started_at}, ":c": {"S": context}}
        sets = "#s = :s, engine = :e, started_at = :t, context = :c"
        if run_id is not None:
            sets += ", run_id = :r"
            values[":r"] = {"N": str(run_id)}
        self._write(env, "update_item", Key={"pk": _env_pk(env), "sk": {"S": f"STACK#{context}"}},
                    UpdateExpression=f"SET {sets} REMOVE fingerprint, finished_at, duration_s, #err"
                   + ("" if run_id is not None else ", run_id"),
                   ExpressionAttributeNames={"#s": "status", "#err": "error"}, ExpressionAttributeValues=values)

    def record_success(self, env: str, context: str, *, fingerprint: str, inputs: dict[str, str],
                       outputs: dict[str, Any], secret_outputs: list[str], engine: str, simulated: bool,
                       started_at: str, finished_at: str, duration_s: float) -> None:
        """A stack deployed: fingerprint and public outputs (secret values already removed by the caller)."""
        fields = _item(status=StackStatus.SUCCEEDED, fingerprint=fingerprint, inputs=json.dumps(inputs, sort_keys=True),
                       outputs=json.dumps(outputs, sort_keys=True), secret_outputs=json.dumps(sorted(secret_outputs)),
                       engine=engine, simulated=simulated, started_at=started_at, finished_at=finished_at,
                       duration_s=duration_s, context=context)
        names = {f"#{k}": k for k in fields}
        self._write(env, "update_item", Key={"pk": _env_pk(env), "sk": {"S": f"STACK#{context}"}},
                    UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields) + " REMOVE #error",
                   ExpressionAttributeNames={**names, "#error": "error"},
                   ExpressionAttributeValues={f":{k}": v for k, v in fields.items()})

    def record_failure(self, env: str, context: str, *, error: str, finished_at: str, duration_s: float) -> None:
        """A stack's run failed: no fingerprint, its last outputs kept; an unknown stack stays unknown."""
        try:
            self._write(env, "update_item", Key={"pk": _env_pk(env), "sk": {"S": f"STACK#{context}"}},
                        UpdateExpression="SET #s = :s, #err = :err, finished_at = :f, duration_s = :d "
                                        "REMOVE fingerprint",
                       ConditionExpression="attribute_exists(pk)",
                       ExpressionAttributeNames={"#s": "status", "#err": "error"},
                       ExpressionAttributeValues={":s": {"S": StackStatus.FAILED}, ":err": {"S": error},
                                                  ":f": {"S": finished_at}, ":d": {"N": str(duration_s)}})
        except ClientError:
            pass

    def forget_stack(self, env: str, context: str) -> None:
        """A stack was destroyed: it leaves the registry."""
        self._write(env, "delete_item", Key={"pk": _env_pk(env), "sk": {"S": f"STACK#{context}"}})

    def interrupted(self, env: str) -> list[StackRecord]:
        """Stacks left running or destroying by a run that did not finish (a killed runner)."""
        return [s for s in self.stacks(env) if s.status in (StackStatus.RUNNING, StackStatus.DESTROYING)]

    # -- runs and leases -----------------------------------------------------------------------------------------

    def lease(self, env: str) -> Lease | None:
        """The lease on ``env``'s lock, expired or not; None when nobody holds it."""
        got = self._call("get_item", Key={"pk": _env_pk(env), "sk": {"S": "LOCK"}}, ConsistentRead=True)
        if "Item" not in got:
            return None
        d = _plain(got["Item"])
        expires = float(d["expires_epoch"])
        return Lease(env=env, holder=d["holder"], owner=d["owner"], host=d["host"], pid=int(d["pid"]),
                     run_id=int(d["run_id"]), command=d["command"], acquired_at=d["acquired_at"],
                     expires_at=d["expires_at"], expired=expires <= self.clock().timestamp(), expires_epoch=expires)

    def lock_holder(self, env: str) -> str | None:
        """Who holds ``env``'s live lease (``user@host pid N (run R, ...; lease until T)``, for ``ode status``);
        None when it is free or its lease ran out."""
        lease = self.lease(env)
        return lease.describe() if lease is not None and not lease.expired else None

    def lock_info(self, env: str) -> LockInfo | None:
        """Who holds ``env``'s lease, expired or not; ``gone`` when it was taken on this host by a process that no
        longer runs (its lease then runs out without a heartbeat)."""
        lease = self.lease(env)
        if lease is None:
            return None
        gone = lease.host == holder()[1] and not process_alive(lease.pid)
        return LockInfo(env=env, holder=lease.holder, host=lease.host, pid=lease.pid, command=lease.command,
                        since=lease.acquired_at, run_id=lease.run_id, expires_at=lease.expires_at,
                        expired=lease.expired, gone=gone)

    def _next_run_id(self) -> int:
        got = self._call("update_item", Key={"pk": {"S": _META}, "sk": {"S": "RUN_COUNTER"}},
                         UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}},
                         ReturnValues="UPDATED_NEW")
        return int(got["Attributes"]["n"]["N"])

    def begin_run(self, env: str, command: str, engine: str, *, force_unlock: bool = False,
                  force: bool = False) -> int:
        """Take ``env``'s lease and record a run, in one transaction; starts the heartbeat that renews the lease.

        A free or expired lease is taken (an expired one's run is marked ``abandoned``). A live one raises
        :class:`LeaseHeldError`, unless ``force_unlock`` and ``force`` are both given.
        """
        holder_text, host, pid = holder()
        owner = holder_text.split("@", 1)[0]
        for _attempt in range(5):  # another runner may change the lease between our read and our write
            current = self.lease(env)
            if current is not None and not current.expired and not (force_unlock and force):
                raise LeaseHeldError(current, force_refused=force_unlock)
            run_id = self._next_run_id()
            now = self.clock()
            expires = now + timedelta(seconds=self.lease_s)
            lock = {"pk": _env_pk(env), "sk": {"S": "LOCK"}, **_item(
                env=env, holder=holder_text, owner=owner, host=host, pid=pid, run_id=run_id, command=command,
                acquired_at=iso(now), expires_at=iso(expires), expires_epoch=expires.timestamp(),
                # DynamoDB's TTL may delete a lease a day after it ran out: it is only housekeeping.
                ttl=int(expires.timestamp()) + 86400)}
            run = {"pk": _env_pk(env), "sk": _run_sk(run_id), **_item(
                run_id=run_id, env=env, command=command, engine=engine, holder=holder_text, started_at=iso(now),
                status=RunStatus.RUNNING)}
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"} if current is None \
                else {"ConditionExpression": "run_id = :old AND expires_epoch = :old_expiry",
                      "ExpressionAttributeValues": {":old": {"N": str(current.run_id)},
                                                    ":old_expiry": {"N": str(current.expires_epoch)}}}
            try:
                self._transact([{"Put": {"TableName": self.table, "Item": lock, **condition}},
                                {"Put": {"TableName": self.table, "Item": run}}])
            except ClientError:
                continue  # another runner wrote the lease first: look again
            if current is not None:
                self._abandon(env, current.run_id)
            self._fences[env] = run_id
            self._lost.pop(env, None)
            self._start_heartbeat(env, run_id)
            return run_id
        current = self.lease(env)
        raise LeaseHeldError(current) if current else RegistryError(f"{self.url}: could not take the lock on {env}")

    def _transact(self, items: list[dict[str, Any]]) -> None:
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise
            raise RegistryError(f"{self.url}: {exc}") from None
        except BotoCoreError as exc:
            raise RegistryError(f"{self.url}: {exc}") from None

    def _start_heartbeat(self, env: str, run_id: int) -> None:
        beat = _Heartbeat(self, env, run_id)
        self._heartbeats[(env, run_id)] = beat
        beat.start()

    def renew(self, env: str, run_id: int) -> bool:
        """Push the lease of ``run_id`` on ``env`` one time-to-live further; False when it is no longer ours."""
        expires = self.clock() + timedelta(seconds=self.lease_s)
        try:
            self._call("update_item", Key={"pk": _env_pk(env), "sk": {"S": "LOCK"}},
                       UpdateExpression="SET expires_at = :e, expires_epoch = :ee, #ttl = :ttl",
                       ConditionExpression="run_id = :r", ExpressionAttributeNames={"#ttl": "ttl"},
                       ExpressionAttributeValues={":e": {"S": iso(expires) or ""},
                                                  ":ee": {"N": str(expires.timestamp())},
                                                  ":ttl": {"N": str(int(expires.timestamp()) + 86400)},
                                                  ":r": {"N": str(run_id)}})
        except ClientError:
            return False
        return True

    def end_run(self, run_id: int, env: str, status: str) -> None:
        """Record how a run ended, stop its heartbeat and release its lease. A run whose lease was taken over is
        recorded ``abandoned`` instead (if its record still says running or abandoned), and the successor's lease
        and run are left as they are."""
        beat = self._heartbeats.pop((env, run_id), None)
        if beat is not None:
            beat.stopped.set()
        ended = {"Update": {"TableName": self.table, "Key": {"pk": _env_pk(env), "sk": _run_sk(run_id)},
                            "UpdateExpression": "SET #s = :s, finished_at = :f",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":s": {"S": status}, ":f": {"S": self._now()}}}}
        try:  # the status only while the lease is still this run's: one transaction with the check
            self._transact([self._lock_check(env, run_id), ended])
        except ClientError:
            try:
                self._call("update_item", Key={"pk": _env_pk(env), "sk": _run_sk(run_id)},
                           UpdateExpression="SET #s = :ab, finished_at = if_not_exists(finished_at, :now)",
                           ConditionExpression="#s IN (:running, :ab)", ExpressionAttributeNames={"#s": "status"},
                           ExpressionAttributeValues={":ab": {"S": RunStatus.ABANDONED}, ":now": {"S": self._now()},
                                                      ":running": {"S": RunStatus.RUNNING}})
            except ClientError:
                pass  # no such run, or it ended already
            if self._fences.get(env) == run_id:
                self._lost.setdefault(env, LeaseLostError(env, run_id))
            return
        try:
            self._call("delete_item", Key={"pk": _env_pk(env), "sk": {"S": "LOCK"}}, ConditionExpression="run_id = :r",
                       ExpressionAttributeValues={":r": {"N": str(run_id)}})
        except ClientError:
            pass  # taken over meanwhile: the lease is someone else's now
        if self._fences.get(env) == run_id:
            self._fences.pop(env)
            self._lost.pop(env, None)

    def release_lock(self, env: str) -> bool:
        """Release this process's lease on ``env`` (its heartbeat stops); False when that write failed (the lease
        then runs out by itself)."""
        for key in [k for k in self._heartbeats if k[0] == env]:
            self._heartbeats.pop(key).stopped.set()
        _holder_text, host, pid = holder()
        run_id = self._fences.get(env)
        condition: dict[str, Any] = (
            {"ConditionExpression": "#h = :h AND pid = :p", "ExpressionAttributeNames": {"#h": "host"},
             "ExpressionAttributeValues": {":h": {"S": host}, ":p": {"N": str(pid)}}} if run_id is None else
            {"ConditionExpression": "run_id = :r", "ExpressionAttributeValues": {":r": {"N": str(run_id)}}})
        try:
            self._call("delete_item", Key={"pk": _env_pk(env), "sk": {"S": "LOCK"}}, **condition)
        except ClientError:
            if run_id is not None:  # not ours any more: keep refusing this run's writes
                self._lost.setdefault(env, LeaseLostError(env, run_id))
            return True  # not ours (or gone already): nothing of this process to release
        except RegistryError:
            return False
        if run_id is not None:
            self._fences.pop(env, None)
            self._lost.pop(env, None)
        return True

    def break_lock(self, env: str, *, force: bool = False) -> Lease | None:
        """Remove ``env``'s lease (``ode ... --force-unlock``): an expired one always, a live one only with
        ``force``. Its run is marked ``abandoned``. Returns the lease that was broken, or None if there was none."""
        current = self.lease(env)
        if current is None:
            return None
        if not current.expired and not force:
            raise LeaseHeldError(current, force_refused=True)
        try:
            self._call("delete_item", Key={"pk": _env_pk(env), "sk": {"S": "LOCK"}},
                       ConditionExpression="run_id = :r", ExpressionAttributeValues={":r": {"N": str(current.run_id)}})
        except ClientError:
            return None  # changed hands meanwhile
        self._abandon(env, current.run_id)
        return current

    def _abandon(self, env: str, run_id: int) -> None:
        """Mark a run whose lease was taken over or broken ``abandoned`` (if it still says running)."""
        try:
            self._call("update_item", Key={"pk": _env_pk(env), "sk": _run_sk(run_id)},
                       UpdateExpression="SET #s = :ab, finished_at = :now",
                       ConditionExpression="attribute_exists(pk) AND #s = :running",
                       ExpressionAttributeNames={"#s": "status"},
                       ExpressionAttributeValues={":ab": {"S": RunStatus.ABANDONED}, ":now": {"S": self._now()},
                                                  ":running": {"S": RunStatus.RUNNING}})
        except ClientError:
            pass

    def runs(self, env: str) -> list[RunRecord]:
        """The runs of ``env``, oldest first."""
        return [_run_record(d) for d in self._query(_env_pk(env), "RUN#")]

    # -- drift checks (``ode drift``) -----------------------------------------------------------------------------

    def record_drift_check(self, env: str, context: str, *, checked_at: str, drifted: list[dict[str, Any]] | None,
                           error: str | None = None) -> None:
        """Record a stack's drift check: the drifted resources (``[]`` none), or ``error`` (not checked)."""
        values: dict[str, Any] = {":c": {"S": context}, ":t": {"S": checked_at},
                                  ":d": {"NULL": True} if drifted is None else {"S": json.dumps(drifted, default=str)},
                                  ":e": {"NULL": True} if error is None else {"S": error}}
        self._write(env, "update_item", Key={"pk": _env_pk(env), "sk": {"S": f"DRIFT#{context}"}},
                    UpdateExpression="SET context = :c, checked_at = :t, drifted = :d, #e = :e",
                   ExpressionAttributeNames={"#e": "error"}, ExpressionAttributeValues=values)

    def record_heal(self, env: str, context: str, *, healed_at: str, run_id: int | None) -> None:
        """Record that a drifted stack was redeployed by run ``run_id``."""
        self._write(env, "update_item", Key={"pk": _env_pk(env), "sk": {"S": f"DRIFT#{context}"}},
                    UpdateExpression="SET context = :c, healed_at = :h, heal_run = :r, "
                                    "checked_at = if_not_exists(checked_at, :h)",
                   ExpressionAttributeValues={":c": {"S": context}, ":h": {"S": healed_at},
                                              ":r": {"NULL": True} if run_id is None else {"N": str(run_id)}})

    def record_worker(self, env: str, context: str, *, worker: dict[str, Any], log: str | None) -> None:
        """Record where ``env.context``'s last operation ran and where its log is (fenced like every write)."""
        item: dict[str, Any] = {"pk": _env_pk(env), "sk": {"S": f"WORKER#{context}"}, "context": {"S": context},
                                "worker": {"S": json.dumps(worker, sort_keys=True, default=str)}}
        if log:
            item["log"] = {"S": log}
        self._write(env, "put_item", Item=item)

    def workers(self, env: str) -> dict[str, dict[str, Any]]:
        """Where each stack of ``env`` last ran: context -> ``{"worker", "log"}``."""
        found: dict[str, dict[str, Any]] = {}
        for d in self._query(_env_pk(env), "WORKER#"):
            found[str(d["context"])] = {"worker": json.loads(d["worker"]), "log": d.get("log")}
        return found

    def drift_checks(self, env: str) -> list[dict[str, Any]]:
        """The last drift check of each stack of ``env``, by context."""
        found = []
        for d in self._query(_env_pk(env), "DRIFT#"):
            drifted = d.get("drifted")
            run = d.get("heal_run")
            found.append({"env": env, "context": d["context"], "checked_at": d.get("checked_at"),
                          "drifted": None if drifted is None else json.loads(drifted), "error": d.get("error"),
                          "healed_at": d.get("healed_at"), "heal_run": None if run is None else int(run)})
        return sorted(found, key=lambda r: r["context"])


def create_table(table: str, *, region: str | None = None, client: Any = None, wait_s: float = 120.0) -> dict[str, Any]:
    """Create the registry table (``ode registry init``): on-demand billing, encryption at rest with a KMS key,
    point-in-time recovery, TTL on ``ttl`` (housekeeping of stale leases). Idempotent: an existing table is
    brought to the same settings. Returns what was set. Any AWS error is one-line :class:`RegistryError`."""
    try:
        return _create_table(table, region=region, client=client, wait_s=wait_s)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise RegistryError(f"dynamodb://{table}: cannot create the table: {error.get('Code', '')}: "
                            f"{error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise RegistryError(f"dynamodb://{table}: cannot create the table: {exc}") from None


def _create_table(table: str, *, region: str | None, client: Any, wait_s: float) -> dict[str, Any]:
    ddb = client or _client(region)
    try:
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            SSESpecification={"Enabled": True, "SSEType": "KMS"},
            Tags=[{"Key": "ode:role", "Value": "registry"}])
        created = True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise RegistryError(f"dynamodb://{table}: cannot create the table: {exc}") from None
        created = False
    deadline = time.monotonic() + wait_s
    while ddb.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RegistryError(f"dynamodb://{table}: still not active after {wait_s:.0f} s")
        time.sleep(1)
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    if created:
        ddb.put_item(TableName=table, Item={"pk": {"S": _META}, "sk": {"S": "SCHEMA"},
                                            "version": {"N": str(SCHEMA_VERSION)}})
    return {"table": table, "created": created, "billing": "PAY_PER_REQUEST", "sse": "KMS", "pitr": True,
            "ttl_attribute": "ttl", "endpoint": os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
            or os.environ.get("AWS_ENDPOINT_URL") or "aws"}
