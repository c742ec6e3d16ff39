"""Lifecycle events on an EventBridge bus, for other tooling (dashboards, chat, cost reports, clean-up jobs).

    from ode.publishing.lifecycle_events import LifecycleEvents

    events = LifecycleEvents("platform-events", project="shop")      # environments.yaml: events: {bus: ...}
    events.stack_succeeded("dev", "orders", engine="pulumi", duration_s=41.2, outputs=public_outputs)

Every event has source ``ode`` and one of the detail-types of :data:`DETAIL_TYPES`; its detail follows the JSON
Schema in :data:`SCHEMAS` (documented in docs/lifecycle-events.md). A rule matches them with
``{"source": ["ode"], "detail-type": ["StackFailed"]}``, for example.

**Rehearsals are marked.** Every event says ``simulated``: true when the run that sent it used the simulated engine
(nothing was deployed; its outputs are made up). A simulated run that would replace what a real engine deployed is
refused before it starts, so it sends nothing about such a stack.

**Publishing never fails a deploy.** Any error (no bus, no permission, no network) is logged as a warning and the
call returns False; nothing is raised to the caller. Secret values are never in an event: a stack's outputs are
given with its secret ones removed.

The client comes from :mod:`ode.aws_clients` (timeouts, a few attempts, a silent endpoint not asked twice), so
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_EVENTS`` point it at moto or LocalStack.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .. import aws_clients
from ..clock import Clock, iso, utcnow

log = logging.getLogger(__name__)

SOURCE = "ode"
STACK_SUCCEEDED, STACK_FAILED = "StackSucceeded", "StackFailed"
ENVIRONMENT_CREATED, ENVIRONMENT_DESTROYED, ENVIRONMENT_EXPIRED = (
    "EnvironmentCreated", "EnvironmentDestroyed", "EnvironmentExpired")
DRIFT_DETECTED, STACK_HEALED = "DriftDetected", "StackHealed"
DETAIL_TYPES = (STACK_SUCCEEDED, STACK_FAILED, ENVIRONMENT_CREATED, ENVIRONMENT_DESTROYED, ENVIRONMENT_EXPIRED,
                DRIFT_DETECTED, STACK_HEALED)
#: Bumped when a detail changes incompatibly; consumers can match on it.
SCHEMA_VERSION = 1
#: An error text in an event is cut to this many characters (EventBridge takes 256 KB per entry).
MAX_ERROR = 2000

_TIME = {"type": "string", "format": "date-time"}
_NAME = {"type": "string", "minLength": 1}
_COMMON: dict[str, Any] = {
    "schema_version": {"const": SCHEMA_VERSION, "description": "Version of this detail's schema."},
    "project": {**_NAME, "description": "The project (environments.yaml `project`)."},
    "environment": {**_NAME, "description": "The environment's name."},
    "time": {**_TIME, "description": "When it happened (UTC, ISO 8601)."},
}
_STACK: dict[str, Any] = {
    **_COMMON,
    "context": {**_NAME, "description": "The bounded context."},
    "stack": {**_NAME, "description": "The stack: `<environment>.<context>`."},
    "engine": {**_NAME, "description": "The engine that ran it (`pulumi`, `simulated`, ...)."},
    "simulated": {"type": "boolean", "description": "True when nothing was really deployed (the simulated engine)."},
    "duration_s": {"type": "number", "minimum": 0, "description": "How long the stack's run took, in seconds."},
}
_ENV: dict[str, Any] = {
    **_COMMON,
    "base": {"type": ["string", "null"], "description": "The base of an environment made on demand."},
    "ephemeral": {"type": "boolean", "description": "True for an environment made on demand."},
    "owner": {"type": ["string", "null"], "description": "Who made it."},
    "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "When it expires."},
    "simulated": {"type": "boolean", "description": "True when the run used the simulated engine (nothing was "
                  "really deployed or destroyed)."},
}


def _schema(detail_type: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://ondemandenv.dev/schemas/events/{detail_type}.json",
            "title": detail_type, "description": description, "type": "object", "properties": properties,
            "required": ["schema_version", "project", "environment", "time", *required],
            "additionalProperties": False}


#: The JSON Schema of each detail-type's ``detail``.
SCHEMAS: dict[str, dict[str, Any]] = {
    STACK_SUCCEEDED: _schema(STACK_SUCCEEDED, "A stack was deployed (an unchanged stack sends nothing).", {
        **_STACK,
        "outputs": {"type": "object", "description": "The stack's outputs by interface, secret ones left out."},
        "secret_outputs": {"type": "array", "items": {"type": "string"},
                           "description": "Names of the secret outputs (their values are never sent)."},
    }, ["context", "stack", "engine", "simulated", "duration_s", "outputs", "secret_outputs"]),
    STACK_FAILED: _schema(STACK_FAILED, "A stack's run failed; the stacks that need it were skipped.", {
        **_STACK,
        "error": {"type": "string", "maxLength": MAX_ERROR, "description": "What went wrong (cut to 2000 chars)."},
        "skipped": {"type": "array", "items": {"type": "string"},
                    "description": "Stacks skipped because they need this one."},
    }, ["context", "stack", "engine", "simulated", "error", "skipped"]),
    ENVIRONMENT_CREATED: _schema(ENVIRONMENT_CREATED, "An environment made on demand was created (or updated).", {
        **_ENV,
        "contexts": {"type": ["array", "null"], "items": {"type": "string"},
                     "description": "The contexts asked for; null for all."},
        "reuse": {"type": "array", "items": {"type": "string"}, "description": "Contexts taken from the base."},
        "ok": {"type": "boolean", "description": "True when every stack deployed."},
    }, ["base", "ephemeral", "owner", "expires_at", "contexts", "reuse", "ok", "simulated"]),
    ENVIRONMENT_DESTROYED: _schema(ENVIRONMENT_DESTROYED, "An environment's stacks were destroyed.", {
        **_ENV,
        "stacks": {"type": "integer", "minimum": 0, "description": "How many stacks were destroyed."},
    }, ["base", "ephemeral", "stacks", "simulated"]),
    ENVIRONMENT_EXPIRED: _schema(ENVIRONMENT_EXPIRED, "Garbage collection found an environment past its expiry "
                                 "(sent before it is destroyed).", {
        **_ENV,
    }, ["base", "ephemeral", "owner", "expires_at", "simulated"]),
    DRIFT_DETECTED: _schema(DRIFT_DETECTED, "A drift check (`ode drift`) found a deployed stack whose resources differ "
                            "in the cloud from its state.", {
        **{k: v for k, v in _STACK.items() if k != "duration_s"},
        "resources": {"type": "array", "description": "The drifted resources and the paths of their changed "
                      "properties (values are not sent).",
                      "items": {"type": "object", "required": ["type", "name", "properties"],
                                "properties": {"type": _NAME, "name": _NAME,
                                               "properties": {"type": "array", "items": {"type": "string"}}}}},
    }, ["context", "stack", "engine", "simulated", "resources"]),
    STACK_HEALED: _schema(STACK_HEALED, "A drifted stack was redeployed (`ode drift --heal`).", {
        **_STACK,
        "resources": {"type": "integer", "minimum": 0, "description": "How many resources had drifted."},
        "outputs_changed": {"type": "boolean", "description": "True when the heal changed the stack's outputs (its "
                            "consumers were then redeployed too)."},
    }, ["context", "stack", "engine", "simulated", "duration_s", "resources", "outputs_changed"]),
}


def wanted_bus(environment: Any) -> str | None:
    """The bus an environment's settings (environments.yaml ``events: {bus: NAME}``) name, or None."""
    events = getattr(environment, "events", None)
    if isinstance(events, dict):
        return events.get("bus")
    return getattr(events, "bus", None)


class LifecycleEvents:
    """Sends ode's lifecycle events to bus ``bus``. Every method returns True when the event was accepted, False
    (with a warning in the log) when it was not; none raises."""

    def __init__(self, bus: str, *, project: str, region: str | None = None, client: Any = None,
                 clock: Clock = utcnow):
        self.bus = bus
        self.project = project
        self.clock = clock
        self._client = client
        self._region = region

    @property
    def client(self) -> Any:
        if self._client is None:
            # Bounded calls: an event is not worth holding a deploy up (boto3 is imported there, on first use).
            self._client = aws_clients.client("events", self._region)
        return self._client

    def publish(self, detail_type: str, env: str, detail: dict[str, Any]) -> bool:
        """Send one event of ``detail_type`` about ``env`` (the common fields are added here)."""
        if detail_type not in SCHEMAS:
            log.warning("not sending an unknown lifecycle event %r", detail_type)
            return False
        now = self.clock()
        body = {"schema_version": SCHEMA_VERSION, "project": self.project, "environment": env,
                "time": iso(now), **detail}
        try:
            response = self.client.put_events(Entries=[{
                "Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(body, sort_keys=True, default=str),
                "EventBusName": self.bus, "Time": now, "Resources": []}])
            failed = response.get("FailedEntryCount", 0)
            if failed:
                entry = (response.get("Entries") or [{}])[0]
                log.warning("lifecycle event %s for %s was refused by bus %r: %s %s", detail_type, env, self.bus,
                            entry.get("ErrorCode", ""), entry.get("ErrorMessage", ""))
                return False
        except Exception as exc:  # noqa: BLE001 - an event must never fail the deploy it reports
            log.warning("could not send lifecycle event %s for %s to bus %r: %s", detail_type, env, self.bus, exc)
            return False
        return True

    # -- one method per detail-type ------------------------------------------------------------------------------

    def _send(self, event: tuple[str, dict[str, Any]]) -> bool:
        detail_type, detail = event
        env = detail.pop("environment")
        return self.publish(detail_type, env, detail)

    def stack_succeeded(self, env: str, context: str, *, engine: str, duration_s: float,
                        outputs: dict[str, Any], secret_outputs: Iterable[str] = (), simulated: bool = False) -> bool:
        """A stack deployed; ``outputs`` may hold secret ones: they are left out here, by name."""
        return self._send(stack_succeeded(env, context, engine=engine, duration_s=duration_s, outputs=outputs,
                                          secret_outputs=secret_outputs, simulated=simulated))

    def stack_failed(self, env: str, context: str, *, engine: str, error: str, duration_s: float | None = None,
                     skipped: Iterable[str] = (), simulated: bool = False) -> bool:
        """A stack's run failed; ``skipped`` are the stacks that needed it."""
        return self._send(stack_failed(env, context, engine=engine, error=error, duration_s=duration_s,
                                       skipped=skipped, simulated=simulated))

    def environment_created(self, env: str, *, base: str | None, ephemeral: bool, owner: str | None,
                            expires_at: str | None, contexts: list[str] | None, reuse: Iterable[str] = (),
                            ok: bool = True, simulated: bool = False) -> bool:
        """An environment was created or updated (``ok``: every stack deployed)."""
        return self._send(environment_created(env, base=base, ephemeral=ephemeral, owner=owner,
                                              expires_at=expires_at, contexts=contexts, reuse=reuse, ok=ok,
                                              simulated=simulated))

    def environment_destroyed(self, env: str, *, base: str | None, ephemeral: bool, stacks: int,
                              owner: str | None = None, expires_at: str | None = None,
                              simulated: bool = False) -> bool:
        """An environment's stacks were destroyed."""
        return self._send(environment_destroyed(env, base=base, ephemeral=ephemeral, stacks=stacks, owner=owner,
                                                expires_at=expires_at, simulated=simulated))

    def environment_expired(self, env: str, *, base: str | None, owner: str | None, expires_at: str | None,
                            ephemeral: bool = True, simulated: bool = False) -> bool:
        """Garbage collection found ``env`` past its expiry (sent before it destroys it)."""
        return self._send(environment_expired(env, base=base, owner=owner, expires_at=expires_at,
                                              ephemeral=ephemeral, simulated=simulated))

    def drift_detected(self, env: str, context: str, *, engine: str, resources: list[dict[str, Any]],
                       simulated: bool = False) -> bool:
        """A drift check found ``env.context`` drifted; ``resources``: ``{"type", "name", "properties"}`` each
        (property paths only, never values)."""
        return self.publish(DRIFT_DETECTED, env, {
            "context": context, "stack": f"{env}.{context}", "engine": engine, "simulated": simulated,
            "resources": [{"type": r["type"], "name": r["name"], "properties": list(r["properties"])}
                          for r in resources]})

    def stack_healed(self, env: str, context: str, *, engine: str, duration_s: float, resources: int,
                     outputs_changed: bool, simulated: bool = False) -> bool:
        """A drifted stack was redeployed (``outputs_changed``: its consumers redeployed as well)."""
        return self.publish(STACK_HEALED, env, {
            "context": context, "stack": f"{env}.{context}", "engine": engine, "simulated": simulated,
            "duration_s": max(0.0, float(duration_s)), "resources": resources, "outputs_changed": outputs_changed})


# -- the details, as ``(detail_type, detail)`` for :meth:`Emitter.emit` (``detail["environment"]`` names the
# -- environment; the common fields schema_version, project and time are added when it is sent) ---------------------

Event = tuple[str, dict[str, Any]]


def stack_succeeded(env: str, context: str, *, engine: str, duration_s: float, outputs: dict[str, Any],
                    secret_outputs: Iterable[str] = (), simulated: bool = False) -> Event:
    """A StackSucceeded event; secret outputs are left out (by name)."""
    hidden = set(secret_outputs)
    return STACK_SUCCEEDED, {
        "environment": env, "context": context, "stack": f"{env}.{context}", "engine": engine,
        "simulated": simulated, "duration_s": max(0.0, float(duration_s)),
        "outputs": {k: v for k, v in outputs.items() if k not in hidden}, "secret_outputs": sorted(hidden)}


def stack_failed(env: str, context: str, *, engine: str, error: str, duration_s: float | None = None,
                 skipped: Iterable[str] = (), simulated: bool = False) -> Event:
    """A StackFailed event; ``skipped`` are the stacks that needed it."""
    detail: dict[str, Any] = {"environment": env, "context": context, "stack": f"{env}.{context}",
                              "engine": engine, "simulated": simulated, "error": error[:MAX_ERROR],
                              "skipped": sorted(skipped)}
    if duration_s is not None:
        detail["duration_s"] = max(0.0, float(duration_s))
    return STACK_FAILED, detail


def environment_created(env: str, *, base: str | None, ephemeral: bool, owner: str | None, expires_at: str | None,
                        contexts: list[str] | None, reuse: Iterable[str] = (), ok: bool = True,
                        simulated: bool = False) -> Event:
    """An EnvironmentCreated event (also sent when an environment is updated)."""
    return ENVIRONMENT_CREATED, {
        "environment": env, "base": base, "ephemeral": ephemeral, "owner": owner, "expires_at": expires_at,
        "contexts": None if contexts is None else list(contexts), "reuse": list(reuse), "ok": ok,
        "simulated": simulated}


def environment_destroyed(env: str, *, base: str | None, ephemeral: bool, stacks: int, owner: str | None = None,
                          expires_at: str | None = None, simulated: bool = False) -> Event:
    """An EnvironmentDestroyed event."""
    return ENVIRONMENT_DESTROYED, {"environment": env, "base": base, "ephemeral": ephemeral, "stacks": stacks,
                                   "owner": owner, "expires_at": expires_at, "simulated": simulated}


def environment_expired(env: str, *, base: str | None, owner: str | None, expires_at: str | None,
                        ephemeral: bool = True, simulated: bool = False) -> Event:
    """An EnvironmentExpired event (sent by gc before it destroys the environment)."""
    return ENVIRONMENT_EXPIRED, {"environment": env, "base": base, "ephemeral": ephemeral, "owner": owner,
                                 "expires_at": expires_at, "simulated": simulated}


class Emitter(Protocol):
    """What the orchestrator sends lifecycle events through (``Orchestrator.events``)."""

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Send one event; ``detail["environment"]`` names its environment. Never raises."""


class LifecycleEmitter:
    """Sends each environment's events to the bus its settings name (``events: {bus: NAME}``; an environment made
    on demand follows its base), in that environment's region. Environments without a bus send nothing.

    ``place(env)`` gives ``(bus, region)`` of an environment, or None. Nothing here ever raises: a failure to send
    is one warning line in the log (logger ``ode.publishing.lifecycle_events``)."""

    def __init__(self, project: str, place: Callable[[str], tuple[str, str | None] | None], *,
                 clock: Clock = utcnow):
        self.project = project
        self.place = place
        self.clock = clock
        self._senders: dict[tuple[str, str | None], LifecycleEvents] = {}
        self._lock = threading.Lock()

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        try:
            body = dict(detail)
            env = str(body.pop("environment"))
            where = self.place(env)
            if where is None:
                return
            with self._lock:
                sender = self._senders.get(where)
                if sender is None:
                    sender = self._senders[where] = LifecycleEvents(where[0], project=self.project,
                                                                    region=where[1], clock=self.clock)
            sender.publish(detail_type, env, body)
        except Exception as exc:  # noqa: BLE001 - an event must never fail the run it reports
            log.warning("could not send lifecycle event %s: %s", detail_type, exc)
