"""``ode init``: a new contract that validates as written, and a handler for the kinds that run code.

What a component's settings are is read from ``components.kinds.KINDS[kind].settings`` (the settings model is their
single source), so a setting added there shows up here without a change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from components.kinds import KINDS

from ..contracts import ENVIRONMENTS_FILE
from ..errors import UsageError
from .catalog import FUNCTION_KINDS, settings_table
from .contract_files import as_yaml, check_kind, check_name, make_dirs, write_new

#: What ``ode init`` makes each kind provide, as (interface suffix, interface kind).
_FIRST_INTERFACE: dict[str, tuple[str, str]] = {
    "network": ("vpc", "network"),
    "event-bus": ("bus", "event-bus"),
    "serverless-api": ("api", "http-api"),
    "event-worker": ("queue", "queue"),
    "workflow": ("workflow", "workflow"),
    "container-service": ("api", "http-api"),
    "data-store": ("table", "table"),
}


_HANDLER = '''"""Handler of the {name} bounded context ({kind}).

ode gives the function its addresses as environment variables: ODE_CONTEXT and ODE_ENV, and for each interface the
contract consumes <PRODUCER>_<INTERFACE>_<OUTPUT> (for example CATALOG_PRODUCTS_TABLE_NAME, SHARED_BUS_BUS_NAME);
TABLE_NAME, EVENT_BUS_NAME and EVENT_DETAIL_TYPE name the context's own table, its bus and its first event.
"""

from __future__ import annotations

import json
import os
from typing import Any

_OWN = ("ODE_CONTEXT", "ODE_ENV", "TABLE_NAME", "EVENT_BUS_NAME", "EVENT_DETAIL_TYPE")


def interfaces() -> dict[str, str]:
    """The addresses ode injected: of this context and of every interface it consumes."""
    return {{k: v for k, v in os.environ.items() if k in _OWN or k.endswith(("_NAME", "_URL", "_ARN"))}}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """{what}"""
    body = {{"context": os.environ.get("ODE_CONTEXT", "{name}"), "env": os.environ.get("ODE_ENV"),
            "interfaces": sorted(interfaces())}}
    return {{"statusCode": 200, "headers": {{"content-type": "application/json"}}, "body": json.dumps(body)}}
'''

_STEP = '''

def {step}(state: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The workflow's `{step}` step: receives the state, returns it for the next step."""
    return {{**state, "{step}": "done"}}
'''



def interface_for(name: str, suffix: str) -> str:
    """The first interface's name: ``<name>-<suffix>`` (``billing-api``), or the name alone when it already says
    what the interface is (``bus`` and ``shared-bus`` of an event-bus, not ``bus-bus``)."""
    return name if name == suffix or name.endswith(f"-{suffix}") else f"{name}-{suffix}"


def init_contract(name: str, kind: str, directory: Path, code_dir: Path | None = None,
                  owner: str | None = None) -> list[Path]:
    """Write ``DIRECTORY/NAME.yaml``, a valid contract of ``kind`` (and, for function kinds, a code directory
    with a handler that uses the injected variables: ``DIRECTORY/services/NAME/src`` unless ``code_dir``, named
    from the contract as ``code: services/NAME/src``). Returns the files written; never overwrites one, never
    writes through a symlink."""
    check_name(name)
    check_kind(kind)
    target = directory / f"{name}.yaml"
    environments = directory / ENVIRONMENTS_FILE
    code = (code_dir or directory / "services" / name / "src") if kind in FUNCTION_KINDS else None
    # Everything is checked before anything is written: a refusal leaves nothing behind.
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--dir {directory}: not a folder")
    if target.is_symlink() or target.exists():
        raise UsageError(f"{target} exists already{' (a symlink)' if target.is_symlink() else ''}; ode init never "
                         "overwrites a contract")
    if environments.is_symlink() and not environments.exists():
        raise UsageError(f"{environments}: a symlink to nothing; ode init does not write through it")
    if code is not None and ((code / "index.py").exists() or (code / "index.py").is_symlink()):
        raise UsageError(f"{code / 'index.py'} exists already; ode init never overwrites code")
    suffix, iface_kind = _FIRST_INTERFACE.get(kind, (sorted(KINDS[kind].provides - {"event"})[0],) * 2)
    interface: dict[str, Any] = {"kind": iface_kind, "version": "0.1.0",
                                 "description": f"TODO: what {name} offers through this {iface_kind}."}
    if iface_kind == "http-api":
        interface["routes"] = [f"GET /{name}", f"POST /{name}"]
    settings: dict[str, Any] = {}
    fields = KINDS[kind].settings.model_fields
    make_dirs(directory, "--dir")
    handler_text = None
    if code is not None:
        what = {"serverless-api": "Answer an API Gateway request.", "event-worker": "Handle a batch of messages.",
                "workflow": "Run one task of the state machine."}[kind]
        handler_text = _HANDLER.format(name=name, kind=kind, what=what)
        if kind == "workflow":
            steps = fields["steps"].get_default(call_default_factory=True) if "steps" in fields else []
            for step in steps if isinstance(steps, list) else []:
                step_name = step if isinstance(step, str) else getattr(step, "name", None)
                if isinstance(step_name, str) and step_name.isidentifier():
                    handler_text += _STEP.format(step=step_name)
        make_dirs(code, "--code-dir")
        if "code" in fields:
            settings["code"] = _relative(code, directory)
        if "handler" in fields:
            settings["handler"] = "index.handler"
    contract: dict[str, Any] = {
        "context": name,
        "owner": owner or f"team-{name}",
        "version": "0.1.0",
        "description": f"TODO: what {name} does.",
        "component": kind,
    }
    if settings:
        contract["settings"] = settings
    contract["provides"] = {interface_for(name, suffix): interface}
    header = (f"# The contract of the bounded context {name!r}: a {kind} ({KINDS[kind].description}).\n"
              f"# Reference: docs/contracts.md. Its settings, with defaults and limits: `ode components`.\n")
    write_new(target, header + as_yaml(contract) + _settings_comment(kind, settings))
    written = [target]
    if code is not None and handler_text is not None:
        write_new(code / "index.py", handler_text)
        written.append(code / "index.py")
    if write_environments(directory):
        written.append(environments)
    return written


def write_environments(directory: Path) -> bool:
    """Write a first ``environments.yaml`` into a library that has none (without it no contract validates);
    False when it has one."""
    environments = directory / ENVIRONMENTS_FILE
    if environments.exists() or (directory / "environments.yml").exists():
        return False
    write_new(environments, _ENVIRONMENTS.format(project=_project_name(directory)))
    return True


_ENVIRONMENTS = """\
# The environments of this library (docs/contracts.md, "environments.yaml"): put your AWS accounts here.
project: {project}
environments:
  dev: {{account: "111111111111", region: us-east-1}}
ephemeral:
  base: dev
  ttl: 8h
  max_ttl: 72h
"""


def _project_name(directory: Path) -> str:
    """A project name from the library's folder (its parent's when the folder is ``contracts``) that AWS takes
    in every name ode makes of it: lowercase letters, digits and '-', starting with a letter."""
    name = directory.resolve().name
    if name in ("contracts", ""):
        name = directory.resolve().parent.name
    name = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24].strip("-")
    return name if name[:1].isalpha() else f"project-{name}".strip("-")


def _settings_comment(kind: str, written: dict[str, Any]) -> str:
    lines = ["# Other settings of this component (uncomment under `settings:` to change one):"]
    for s in settings_table(kind):
        if s["name"] not in written and not s["required"]:
            lines.append(f"#   {s['name']}: {json.dumps(s['default'])}    # {s['description']}")
    lines.append("# consumes:")
    lines.append("#   - {context: other-context, interface: its-interface}   # access and version optional")
    return "\n".join(lines) + "\n"


def _relative(path: Path, start: Path) -> str:
    import os.path  # os.path.relpath walks up with '..', which Path.relative_to does not

    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()

