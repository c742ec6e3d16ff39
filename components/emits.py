"""Which of its declared events a context's code publishes, and at which moment: ``settings.emits``, or its default.

A moment depends on the kind that runs the code:

- ``serverless-api``: a route key of one of its HTTP APIs (``"POST /orders"``); the event goes out after a write
  through that route. Default: every write route (``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``ANY``) publishes every
  event the context provides.
- ``workflow``: ``success`` (the last step succeeded) or ``failure`` (a step failed for good). Default: an event whose
  name says it went wrong (ends in ``Failed``, ``Failure``, ``Rejected``, ``Declined``, ``Cancelled``, ``Expired``,
  ``TimedOut`` or ``Error``) on failure, every other on success.
- ``event-worker``: the name of an event it consumes, once it has handled one; or ``message``, a queue message that
  is not an EventBridge event. Default: every consumed event and every message publish every event it provides.

Free of Pulumi imports: ``ode validate`` checks a contract's ``emits`` through the settings models
(``components.kinds``), and the components inject the resolved map into their functions' environment
(``EVENT_EMITS``), where the built-in handlers read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

#: The methods of routes that change something: what an API publishes its events after.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", "ANY"})
#: An event whose name says something went wrong: a workflow publishes it when an execution fails.
FAILURE_NAME = re.compile(r"(Failed|Failure|Rejected|Declined|Cancelled|Canceled|Expired|TimedOut|Error)$")
#: The moments of a workflow.
SUCCESS, FAILURE = "success", "failure"
#: The moment of an event worker that handled a plain queue message (not an EventBridge event).
MESSAGE = "message"
#: The route an HTTP API gets when its contract lists none.
DEFAULT_ROUTE = "ANY /{proxy+}"


def write_routes(routes: Iterable[str]) -> list[str]:
    """The routes that change something, in order."""
    return [r for r in routes if r.split(" ", 1)[0] in WRITE_METHODS]


def default_emits(kind: str, events: Sequence[str], routes: Sequence[str] = (),
                  consumed: Sequence[str] = ()) -> dict[str, list[str]]:
    """What a context of ``kind`` providing ``events`` publishes when its contract does not say (see the module)."""
    if not events:
        return {}
    if kind == "serverless-api":
        return {route: list(events) for route in write_routes(routes or [DEFAULT_ROUTE])}
    if kind == "workflow":
        failed = [e for e in events if FAILURE_NAME.search(e)]
        out = {SUCCESS: [e for e in events if e not in failed], FAILURE: failed}
        return {moment: names for moment, names in out.items() if names}
    if kind == "event-worker":
        return {moment: list(events) for moment in [*consumed, MESSAGE]}
    return {}


def emits_errors(kind: str, emits: Mapping[str, Sequence[str]], events: Sequence[str],
                 routes: Sequence[str] | None = None, consumed: Sequence[str] | None = None) -> list[str]:
    """What is wrong with a contract's ``emits`` (each message starts with the key it is about): an event the
    context does not provide, a moment its kind does not have, a provided event that no moment publishes.
    ``routes`` and ``consumed`` left out (not known where it is checked): those keys are not checked."""
    errors: list[str] = []
    for moment, names in emits.items():
        for name in names:
            if name not in events:
                errors.append(f"{moment}: {name!r} is not an event this context provides "
                              f"({', '.join(events) or 'it provides none'})")
        if kind == "workflow" and moment not in (SUCCESS, FAILURE):
            errors.append(f"{moment}: a workflow publishes on {SUCCESS!r} or {FAILURE!r}")
        if kind == "serverless-api" and routes is not None and moment not in (routes or [DEFAULT_ROUTE]):
            errors.append(f"{moment}: not a route of this context's HTTP APIs ({', '.join(routes) or DEFAULT_ROUTE})")
        if kind == "event-worker" and consumed is not None and moment not in (*consumed, MESSAGE):
            errors.append(f"{moment}: not an event this context consumes, nor {MESSAGE!r} "
                          f"(it consumes {', '.join(consumed) or 'no event'})")
    published = {name for names in emits.values() for name in names}
    for name in events:
        if name not in published:
            errors.append(f"{name}: provided, but no moment here publishes it")
    return errors


def resolve_emits(kind: str, emits: Mapping[str, Sequence[str]] | None, events: Sequence[str],
                  routes: Sequence[str] = (), consumed: Sequence[str] = ()) -> dict[str, list[str]]:
    """The contract's ``emits`` when it gives one (``ValueError`` naming ``settings.emits`` when it is wrong), else
    the default of its kind."""
    if emits is None:
        return default_emits(kind, events, routes, consumed)
    errors = emits_errors(kind, emits, events, routes, consumed)
    if errors:
        raise ValueError(f"settings.emits.{errors[0]}")
    return {moment: list(names) for moment, names in emits.items()}
