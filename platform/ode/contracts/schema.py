"""The JSON Schema of a contract file and of ``environments.yaml``, for editors (``ode schema``)."""

from __future__ import annotations

from typing import Any, Literal

from components.kinds import KINDS

from .model import ACCESS, Context, EnvironmentsFile


def _settings_schema(kind: str, partial: bool) -> dict[str, Any]:
    """The JSON Schema of one component's settings (``partial``: every setting optional, as in `overrides`)."""
    schema = KINDS[kind].settings.model_json_schema(mode="validation")
    schema["title"] = f"Settings of {kind}" + (" (an environment's overrides)" if partial else "")
    if partial:
        schema.pop("required", None)
    return schema


def json_schema(which: Literal["context", "environments"] = "context") -> dict[str, Any]:
    """The JSON Schema of a contract file (or of environments.yaml), for editors.

    A contract's schema is a union discriminated by ``component``: each branch checks ``settings`` and every
    ``overrides`` entry against that component's settings model (descriptions, defaults, enums, limits), built
    from ``components.kinds.KINDS`` so that a new setting appears here without a change to this module.
    """
    if which != "context":
        schema = EnvironmentsFile.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = "OnDemandEnv environments"
        return schema
    base = Context.model_json_schema(by_alias=True)
    defs: dict[str, Any] = base.pop("$defs", {})
    accesses = sorted({a for values in ACCESS.values() for a in values})
    consumes = defs.get("Consumes", {}).get("properties", {})
    if "access" in consumes:
        consumes["access"] = {"enum": accesses, "description": consumes["access"].get("description", "")
                              + " Per kind: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in ACCESS.items())}
    branches: list[dict[str, Any]] = []
    mapping: dict[str, str] = {}
    for kind in sorted(KINDS):
        for partial in (False, True):
            sub = _settings_schema(kind, partial)
            defs.update(sub.pop("$defs", {}))
            defs[f"settings-{kind}" + ("-override" if partial else "")] = sub
        defs[f"context-{kind}"] = {
            "title": f"Contract of a {kind} context",
            "type": "object",
            "properties": {
                "component": {"const": kind, "description": KINDS[kind].description},
                "settings": {"$ref": f"#/$defs/settings-{kind}"},
                "overrides": {"type": "object", "additionalProperties": {"$ref": f"#/$defs/settings-{kind}-override"}},
            },
        }
        branches.append({"$ref": f"#/$defs/context-{kind}"})
        mapping[kind] = f"#/$defs/context-{kind}"
    base["properties"]["component"] = {"enum": sorted(KINDS), "description": base["properties"]["component"].get(
        "description", "")}
    base.update({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "OnDemandEnv bounded-context contract",
        "oneOf": branches,
        "discriminator": {"propertyName": "component", "mapping": mapping},
        "$defs": defs,
    })
    return base
