"""The rules of a contracts library that span files, each with a stable id (as the policy pack's rules have): a
consumed interface must exist and allow the access asked for, versions must be compatible, environments known,
events publishable, deploy edges acyclic. Each mistake is a :class:`ContractError` carrying its rule's id.

A rule within one file (a field's type, a pattern, a missing field) is the contract language's own, checked by its
pydantic models (:mod:`ode.contracts.model`) as each file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from components.code import CODE_FIELDS, CodeDirectoryError, check_directory
from components.constraints import library_errors  # AWS refusals beyond one settings model
from components.kinds import KINDS

from .cycles import deploy_cycles
from .diagnostics import ContractError, field_path, line_of, settings_errors
from .model import (
    ACCESS,
    ENVIRONMENTS_FILE,
    Context,
    EnvironmentsFile,
    Link,
    did_you_mean,
    is_deploy_kind,
    settings_context,
)
from .versions import VersionRange

#: Rule id -> what it asks. The ids are stable: ``ode validate --json`` names them.
RULES: dict[str, str] = {
    "unknown-environment": "an environment named in `overrides` or `environments` is one of environments.yaml's",
    "component-settings": "settings (with each environment's overrides merged) are valid for the component kind",
    "interface-kind": "the component kind can provide each kind of interface the context provides",
    "consumes-itself": "a context does not consume its own interfaces",
    "consumed-twice": "an interface is consumed once per context",
    "unknown-context": "a consumed context exists in the library",
    "unknown-interface": "a consumed interface exists in its producer's `provides`",
    "access": "the access asked for is one the interface's kind allows",
    "version-range": "the producer's interface version is inside the consumer's `version` range",
    "producer-deployed": "a consumer deployed in an environment has its producers deployed there too",
    "events-publishable": "a context that provides events can publish them (it provides an event bus or "
                          "consumes one with access `publish`)",
    "reused-context": "each context of `ephemeral.reuse` exists",
    "deploy-cycle": "deploy edges form no cycle",
    "aws-refusal": "nothing AWS would refuse at deploy time that the contracts already show (a port the Dockerfile "
                   "does not expose, a network that cannot carry what attaches to it, names made from the project, "
                   "account quotas)",
}


class LibraryView(Protocol):
    """What the rules read of a library (:class:`ode.contracts.ContractLibrary` is one)."""

    root: Path
    environments: EnvironmentsFile
    contexts: dict[str, Context]
    files: dict[str, Path]
    broken: set[str]

    def label(self, context: str) -> str: ...

    def links(self, context: str) -> tuple[Link, ...]: ...


def check_library(library: LibraryView, env: str | None = None) -> list[ContractError]:
    """Every cross-file error of ``library`` (limited to ``env`` where given), each naming its rule."""
    errors: list[ContractError] = []
    envs = library.environments.environments
    env_names = [env] if env else list(envs)
    walked: dict[Path, str | None] = {}  # each code directory is walked once, whoever names it
    validated: dict[tuple[str, str], Any] = {}  # the settings models, made once for every rule that reads them
    needs: dict[str, set[str]] = {}  # consumer -> the producers it needs deployed first
    for name, ctx in library.contexts.items():
        label = library.label(name)
        path = library.files.get(name)

        def err(rule: str, loc: tuple[str | int, ...], message: str, label: str = label,
                path: Path | None = path) -> None:
            line = line_of(path, loc) if path else None
            errors.append(ContractError(label, line, field_path(loc), message, rule))

        for env_name in ctx.overrides:
            if env_name not in envs:
                err("unknown-environment", ("overrides", env_name), f"environment {env_name!r} is not in "
                    f"environments.yaml{did_you_mean(env_name, envs)}; it has {', '.join(envs)}")
        for i, env_name in enumerate(ctx.environments or []):
            if env_name not in envs:
                err("unknown-environment", ("environments", i), f"environment {env_name!r} is not in "
                    f"environments.yaml{did_you_mean(env_name, envs)}; it has {', '.join(envs)}")
        kind = KINDS[ctx.component]
        for env_name in env_names if ctx.environments is None else ctx.environments:
            if env_name not in envs or (env and env_name != env):
                continue
            try:
                settings = kind.settings.model_validate(ctx.settings_for(env_name),
                                                        context=settings_context(ctx, path))
            except ValidationError as exc:
                for loc, msg in settings_errors(exc, ctx.component, ctx.overrides.get(env_name, {}), env_name):
                    err("component-settings", loc, msg)
            else:
                validated[name, env_name] = settings
                for loc, msg in _code_errors(ctx, env_name, settings, path, walked):
                    err("component-settings", loc, msg)
        for iface_name, iface in ctx.provides.items():
            if iface.kind not in kind.provides:
                able = sorted(k for k, c in KINDS.items() if iface.kind in c.provides)
                err("interface-kind", ("provides", iface_name, "kind"),
                    f"{ctx.component} cannot provide a {iface.kind!r} interface "
                    f"(it provides {', '.join(sorted(kind.provides))}; "
                    f"{iface.kind} is provided by {', '.join(able) or 'no component'})")
        seen: set[tuple[str, str]] = set()
        for i, entry in ctx.numbered_consumes():
            if entry.context == name:
                err("consumes-itself", ("consumes", i, "context"), f"context {name!r} consumes itself")
            elif (entry.context, entry.interface) in seen:
                err("consumed-twice", ("consumes", i), f"{entry.context}/{entry.interface} is consumed twice")
            seen.add((entry.context, entry.interface))
        publishes = any(i.kind == "event-bus" for i in ctx.provides.values())
        for i, entry in ctx.numbered_consumes():
            if entry.context == name:
                continue
            producer = library.contexts.get(entry.context)
            if producer is None:
                if entry.context in library.broken:
                    continue  # its own file's errors are reported already
                err("unknown-context", ("consumes", i, "context"), f"context {entry.context!r} does not exist"
                    f"{did_you_mean(entry.context, library.contexts)}")
                continue
            target = producer.provides.get(entry.interface)
            if target is None:
                if entry.interface in producer.dropped:
                    continue  # declared with errors of its own, reported in the producer's file
                offered = ", ".join(producer.provides) or "nothing"
                err("unknown-interface", ("consumes", i, "interface"),
                    f"{entry.context} provides no interface {entry.interface!r}"
                    f"{did_you_mean(entry.interface, producer.provides)} (it provides {offered})")
                continue
            allowed = ACCESS[target.kind]
            if entry.access is not None and entry.access not in allowed:
                err("access", ("consumes", i, "access"),
                    f"{entry.access!r} is not an access of {target.kind} {entry.context}/{entry.interface}"
                    f"{did_you_mean(entry.access, allowed)} (allowed: {', '.join(allowed)})")
            if target.kind == "event-bus" and entry.access_for(target.kind) == "publish":
                publishes = True
            if entry.version is not None and not VersionRange.parse(entry.version).allows(target.version):
                err("version-range", ("consumes", i, "version"),
                    f"{entry.context}/{entry.interface} is at {target.version}, outside {entry.version!r}")
            if is_deploy_kind(target.kind):
                for env_name in env_names:
                    if env_name in envs and ctx.deployed_in(env_name) and not producer.deployed_in(env_name):
                        err("producer-deployed", ("consumes", i, "context"),
                            f"{name} is deployed in {env_name} but its producer {entry.context} is not")
        # Resolved now, while its producers are at hand: the deploy cycles below and the graph read them again.
        needs[name] = {link.producer for link in library.links(name)
                       if link.deploy and link.producer in library.contexts and link.producer != name}
        events = [n for n, i in ctx.provides.items() if i.kind == "event"]
        if not publishes and events:
            err("events-publishable", ("provides",), f"provides events ({', '.join(events)}) but cannot publish "
                "them: consume an event-bus with access 'publish', or provide one")
    policy = library.environments.ephemeral
    if policy:
        for i, reused in enumerate(policy.reuse):
            if reused not in library.contexts and reused not in library.broken:
                errors.append(ContractError(ENVIRONMENTS_FILE, line_of(library.root / ENVIRONMENTS_FILE, (
                    "ephemeral", "reuse", i)), f"ephemeral.reuse[{i}]",
                    f"context {reused!r} does not exist{did_you_mean(reused, library.contexts)}", "reused-context"))
    # AWS's refusals that one settings model cannot show: files (a Dockerfile's EXPOSE), other contexts (the
    # network an attached context needs), names made from the project, account quotas.
    def owner_err(rule: str, owner: str | None, loc: tuple[str | int, ...], message: str) -> None:
        where = library.files.get(owner) if owner is not None else library.root / ENVIRONMENTS_FILE
        errors.append(ContractError(library.label(owner) if owner is not None else ENVIRONMENTS_FILE,
                                    line_of(where, loc) if where else None, field_path(loc), message, rule))

    for owner, loc, message in library_errors(library, env_names, validated):
        owner_err("aws-refusal", owner, loc, message)
    for cycle in deploy_cycles(needs):
        consumer, needed = cycle[0], cycle[1]
        index = next(i for i, c in library.contexts[consumer].numbered_consumes() if c.context == needed)
        cycle_loc: tuple[str | int, ...] = ("consumes", index, "context")
        path = library.files.get(consumer)
        errors.append(ContractError(
            library.label(consumer), line_of(path, cycle_loc) if path else None, field_path(cycle_loc),
            "cycle of deploy edges: " + " -> ".join(cycle), "deploy-cycle"))
    return errors


def _code_errors(ctx: Context, env: str, settings: Any, path: Path | None, walked: dict[Path, str | None],
                 ) -> list[tuple[tuple[str | int, ...], str]]:
    """What the code directories of valid settings hold that may not be deployed: a link leading out of the
    directory or nowhere, a file that cannot be read (each directory walked once per check)."""
    if path is None:
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name in CODE_FIELDS:
        value = settings.__dict__.get(name)  # not getattr: most kinds have no such field, and pydantic raises then
        if not value:
            continue
        folder = (path.parent / value).resolve()
        if folder not in walked:
            try:
                check_directory(folder)
                walked[folder] = None
            except CodeDirectoryError as exc:
                walked[folder] = exc.named(value)
        problem = walked[folder]
        if problem:
            where = ("overrides", env, name) if name in ctx.overrides.get(env, {}) else ("settings", name)
            found.append((where, problem))
    return found
