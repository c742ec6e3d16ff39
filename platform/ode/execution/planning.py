"""What decides whether a stack deploys, with no registry write and no engine run: the digests its fingerprint is
made of, the words that say why it deploys, and the tags of an environment made on demand.

A stack's fingerprint covers its contract, its resolved settings, the code of its component kind
(:func:`ode.component_code.code_digests`), its team's own code, its environment's place (account, region, role)
and its upstream outputs; the orchestrator computes it from these parts when a stack becomes ready.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from components._code import CodeDirectoryError, code_directories, directory_digest

from ..contracts import ContractLibrary
from ..errors import OdeError
from ..registry.records import EnvironmentRecord, StackRecord
from ..status import StackStatus

#: What each part of a fingerprint is called when it changed.
PART_LABELS = {"contract": "contract", "settings": "settings", "code": "component code", "place": "environment",
               "upstream": "upstream outputs", "service_code": "service code"}


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def service_code_digest(library: ContractLibrary, context: str, env: str) -> str:
    """A digest of the team's own code of ``context`` in ``env`` (its ``settings.code`` or ``settings.build``
    directory): a changed file there redeploys that stack. Empty when the context runs no code of its own."""
    path = library.files.get(context) or library.root / f"{context}.yaml"
    folders = code_directories(library.contexts[context].settings_for(env), path.resolve().parent)
    try:
        return digest({name: directory_digest(folder) for name, folder in sorted(folders.items())}) if folders else ""
    except CodeDirectoryError as exc:  # changed since the library was checked: said as `ode validate` says it
        raise OdeError(f"{library.label(context)}: settings: {exc}") from None


def why(rec: StackRecord | None, parts: dict[str, str]) -> str:
    """Why a stack deploys: new, interrupted, failed last time, or which parts of its fingerprint changed."""
    if rec is None:
        return "new stack"
    if rec.status in (StackStatus.RUNNING, StackStatus.DESTROYING):
        return "its last run was interrupted"
    if rec.status == StackStatus.FAILED:
        return "its last run failed"
    changed = [k for k, v in parts.items() if rec.inputs.get(k) != v]
    return ("changed: " + ", ".join(PART_LABELS[k] for k in changed)) if changed else "fingerprint changed"


def environment_tags(record: EnvironmentRecord) -> dict[str, str]:
    """The tags every resource of an environment made on demand carries: ``ode:created-by``, ``ode:expires-at``
    and, for a pull request's environment (``pr-<N>``), ``ode:pr``."""
    tags = {"ode:created-by": record.owner or "unknown"}
    if record.expires_at:
        tags["ode:expires-at"] = record.expires_at
    match = re.fullmatch(r"pr-(\d+)", record.name)
    if match:
        tags["ode:pr"] = match.group(1)
    return tags
