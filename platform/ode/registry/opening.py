"""Opening a registry from a URL.

    from ode.registry import open_registry

    registry = open_registry("dynamodb://ode-registry?region=eu-west-1", ".ode")   # or sqlite:///.ode/registry.db
    registry.stacks("dev")

URLs are resolved by scheme through the entry-point group ``ode.registries``: each entry is a factory
``(url, state_dir) -> RegistryBackend``. ode declares ``sqlite`` and ``dynamodb``; a third party adds a store by
declaring its own entry in its package, without editing ode::

    [project.entry-points."ode.registries"]
    etcd = "my_package.registry:open_etcd"

A backend's module is imported only when a URL names it (the DynamoDB one imports boto3).

Commands that only read (``status``, ``env list``, ``outputs``, ``drift``, the source of ``registry copy``) open
with ``create=False``: a registry that is not there is a :class:`~ode.registry.errors.RegistryNotFoundError`
(exit 2) and nothing is made. A factory takes that as a keyword argument ``create``; one that does not is called
without it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError
from .protocol import RegistryBackend

#: The entry-point group that maps a URL scheme to a registry factory.
ENTRY_POINT_GROUP = "ode.registries"

#: Used when the distribution's metadata is not installed (running from a source tree): the same targets as
#: pyproject.toml declares, loaded the same way.
_BUILTIN = {
    "sqlite": "ode.registry.sqlite:open_sqlite",
    "dynamodb": "ode.registry.dynamodb:open_dynamodb",
}

RegistryFactory = Callable[..., RegistryBackend]


def _factory(scheme: str) -> RegistryFactory:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme not in found and scheme in _BUILTIN:
        found[scheme] = EntryPoint(scheme, _BUILTIN[scheme], ENTRY_POINT_GROUP)
    if scheme not in found:
        known = ", ".join(sorted(set(found) | set(_BUILTIN)))
        raise UsageError(f"--registry: no registry backend for scheme {scheme!r} (known: {known})")
    factory: RegistryFactory = found[scheme].load()
    return factory


def _call(factory: RegistryFactory, url: str, state: Path, create: bool) -> RegistryBackend:
    if create:
        return factory(url, state)
    try:
        accepts = any(p.name == "create" or p.kind is inspect.Parameter.VAR_KEYWORD
                      for p in inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a callable without a signature: call it as the protocol says
        accepts = False
    return factory(url, state, create=False) if accepts else factory(url, state)


def open_registry(url: str | None, state_dir: str | Path, *, create: bool = True) -> RegistryBackend:
    """The registry ``url`` names (``sqlite:///...``, ``dynamodb://TABLE?region=R``, or any scheme a package
    declares under ``ode.registries``); None or empty: ``<state_dir>/registry.db``. ``create=False``: a registry
    that does not exist is a :class:`~ode.registry.errors.RegistryNotFoundError` and nothing is created."""
    state = Path(state_dir)
    if not url:
        # The default is ode's own SQLite registry: loaded from its target directly, without reading every
        # installed distribution's entry points.
        default: RegistryFactory = EntryPoint("sqlite", _BUILTIN["sqlite"], ENTRY_POINT_GROUP).load()
        return _call(default, "sqlite://", state, create)
    scheme = urlsplit(url).scheme
    if not scheme:
        raise UsageError(f"--registry {url!r}: expected a URL such as sqlite:///.ode/registry.db or "
                         "dynamodb://TABLE?region=REGION")
    return _call(_factory(scheme), url, state, create)
