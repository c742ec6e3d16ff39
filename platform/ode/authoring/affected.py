"""Which contexts a change touches: those whose contract, settings, component code or own code (the directory its
``settings.code`` or ``settings.build`` names) changed since a git ref,
plus every context that consumes them through deploy edges. A pull request's environment holds just these.

A contract counts as changed when its meaning changed, not its text: a new comment or a reordered mapping is no
change. Component code is mapped to the kinds that use it: ``components/<kind>.py`` and
``components/handlers/<kind>/`` belong to that kind, any other file under ``components/`` (shared code) and the
program itself belong to every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml_rs
from pydantic import ValidationError

from components.code import code_directories

from .. import git
from ..component_code import PROGRAM_FILES, kinds_of_code
from ..contracts import ENVIRONMENTS_FILE, Context, ContractLibrary, EnvironmentsFile
from ..graph import EnvGraph

__all__ = ["PROGRAM_FILES", "Affected", "affected", "kinds_of_code"]

#: What ``ode affected`` needs git for, as a failure says it.
_PURPOSE = "`ode affected` compares against a git ref"


@dataclass
class Affected:
    """The result of :func:`affected`: what changed, why, and what consumes it."""

    since: str
    env: str
    #: context -> why it counts as changed (one line each)
    changed: dict[str, list[str]] = field(default_factory=dict)
    #: consumer -> the changed producer that pulls it in
    consumers: dict[str, str] = field(default_factory=dict)
    #: changed contexts and their consumers, in deploy order
    contexts: list[str] = field(default_factory=list)
    #: the commit compared with: the merge-base of ``since`` and HEAD
    base: str = ""

    def why(self, context: str) -> str:
        """One line saying why ``context`` is listed."""
        if context in self.changed:
            return "; ".join(self.changed[context])
        return f"consumes {self.consumers[context]}, which is affected"

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "base": self.base, "env": self.env, "contexts": self.contexts,
                "changed": self.changed, "consumers": self.consumers,
                "why": {c: self.why(c) for c in self.contexts}}


def _old_model(text: str | None, model: type[Context] | type[EnvironmentsFile]) -> Any:
    if text is None:
        return None
    try:
        return model.model_validate(yaml_rs.loads(text))
    except (yaml_rs.YAMLDecodeError, ValidationError, TypeError):
        return None


def affected(library: ContractLibrary, since: str, env: str | None = None) -> Affected:
    """The contexts of ``env`` (default: the ephemeral base, else the first environment) whose contract, settings
    or component code changed since the git ref ``since``, plus their consumers through deploy edges."""
    if env is None:
        policy = library.environments.ephemeral
        env = policy.base if policy else next(iter(library.environments.environments))
    graph = EnvGraph.resolve(library, env)
    top = git.top(library.root, purpose=_PURPOSE)
    base = git.merge_base(top, since, purpose=_PURPOSE)
    paths = git.changed_paths(top, base, purpose=_PURPOSE)
    result = Affected(since=since, env=env, base=base)
    since = base  # old texts are read at the merge-base too

    def mark(context: str, why: str) -> None:
        if context in graph:
            result.changed.setdefault(context, []).append(why)

    env_rel = str((library.root / ENVIRONMENTS_FILE).resolve().relative_to(top))
    if env_rel in paths:
        old_envs = _old_model(git.file_at(top, since, env_rel), EnvironmentsFile)
        settings_env = env
        if old_envs is None or old_envs.environments.get(settings_env) != library.environments.environments.get(
                settings_env):
            for name in graph.contexts:
                mark(name, f"environment {settings_env} changed in {env_rel}")
    for name in graph.contexts:
        rel = str(library.files[name].resolve().relative_to(top))
        if rel not in paths:
            continue
        old = _old_model(git.file_at(top, since, rel), Context)
        if old is None:
            mark(name, f"new contract {rel}")
        elif old.model_dump() != library.contexts[name].model_dump():
            mark(name, f"contract changed in {rel}")
    for name in graph.contexts:  # the team's own code: a file under a context's code or build directory
        contract_dir = library.files[name].resolve().parent
        for field_name, folder in code_directories(library.contexts[name].settings_for(env), contract_dir).items():
            try:
                under = folder.relative_to(top.resolve()).as_posix()
            except ValueError:
                continue  # outside the repository: git cannot say what changed there
            for path in sorted(p for p in paths if p == under or p.startswith(under + "/")):
                mark(name, f"service code ({field_name}) changed in {path}")
    kinds = {c.component for c in library.contexts.values()}
    for path in sorted(paths):
        touched = kinds_of_code(path, kinds)
        if not touched:
            continue
        for name in graph.contexts:
            if library.contexts[name].component in touched:
                mark(name, f"component code changed in {path}")
    for name in graph.contexts:  # deploy order: a producer is marked before its consumers are reached
        if name in result.changed or name in result.consumers:
            for consumer in graph.consumers_of(name):
                if consumer not in result.changed:
                    result.consumers.setdefault(consumer, name)
    result.contexts = [n for n in graph.contexts if n in result.changed or n in result.consumers]
    return result
