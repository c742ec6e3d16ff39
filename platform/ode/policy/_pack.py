"""The CrossGuard pack's policies: ``policies/__main__.py`` builds the ``PolicyPack`` from these."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..contracts.policies import RULES, RuleInfo
from ._environment import ENVIRONMENT_RULES, view_from_bounds
from ._model import Bounds, EnvironmentRule, Res, provider_default_tags
from ._resource_rules import RESOURCE_RULES, ResourceRule
from ._stack_rules import STACK_RULES, StackRule


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}.get(type(value),
                                                                                                "string")


def _from_policy_resource(res: Any) -> Res:
    """A rule view of a CrossGuard ``PolicyResource`` (stack validations)."""
    provider = getattr(res, "provider", None)
    tags = provider_default_tags(provider.props) if provider is not None else {}
    parent = getattr(res, "parent", None)
    return Res(res.resource_type, res.name, res.props, parent.name if parent is not None else None,
               [d.name for d in (getattr(res, "dependencies", None) or [])], tags)


def crossguard_policies() -> list[Any]:
    """Every resource and stack rule as a pulumi-policy ``ResourceValidationPolicy`` or ``StackValidationPolicy``,
    with its default level and its configuration schema; environment rules as stack policies over the one stack
    the CLI shows them (the hops inside it, and the edges its bounds name). Library rules read the contracts,
    which a stack alone does not carry, and hops into other stacks need those stacks: ``ode check`` and the deploy
    gate run those."""
    from pulumi_policy import (  # the SDK of the pack: needed only where the pack is built
        EnforcementLevel,
        PolicyConfigSchema,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    levels = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY,
              "disabled": EnforcementLevel.DISABLED}

    def schema(info: RuleInfo) -> Any:
        props: dict[str, dict[str, Any]] = {k: {"type": _json_type(v), "default": v} for k, v in info.config.items()}
        if info.id in ("iam-least-privilege", "contract-reachable"):
            props["bounds"] = {"type": "object", "description": "What the stack's roles may reach (set by ode)."}
        if info.id == "ingress-reachable":
            props["public"] = {"type": "boolean", "description": "Whether the stack's context is public (set by ode)."}
            props["context"] = {"type": "string", "description": "The stack's context (set by ode)."}
            props["component"] = {"type": "string", "description": "The context's component kind (set by ode)."}
        return PolicyConfigSchema(properties=props) if props else None

    def resource_validate(rule: str, fn: ResourceRule) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report: Callable[..., None]) -> None:
            config = {**RULES[rule].config, **(args.get_config() or {})}
            provider = args.provider
            res = Res(args.resource_type, args.name, args.props, getattr(args.opts, "parent", None), None,
                      provider_default_tags(provider.props) if provider is not None else {})
            for message in fn(res, config):
                report(message, args.urn)
        return validate

    def stack_validate(rule: str, fn: StackRule) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report: Callable[..., None]) -> None:
            config = {**RULES[rule].config, **(args.get_config() or {})}
            bounds = Bounds.from_dict(config["bounds"]) if isinstance(config.get("bounds"), Mapping) else None
            by_name = {r.name: r for r in args.resources}
            views = [_from_policy_resource(r) for r in args.resources
                     if not r.resource_type.startswith("pulumi:providers:")]
            for res, message in fn(views, config, bounds):
                urn = by_name[res.name].urn if res is not None and res.name in by_name else None
                report(message, urn)
        return validate

    def environment_validate(rule: str, fn: EnvironmentRule) -> Callable[[Any, Callable[..., None]], None]:
        def validate(args: Any, report: Callable[..., None]) -> None:
            config = {**RULES[rule].config, **(args.get_config() or {})}
            bounds = Bounds.from_dict(config["bounds"]) if isinstance(config.get("bounds"), Mapping) else None
            by_name = {r.name: r for r in args.resources}
            views = [_from_policy_resource(r) for r in args.resources
                     if not r.resource_type.startswith("pulumi:providers:")]
            for _, res, message, _ in fn(view_from_bounds(views, bounds, config), config):
                urn = by_name[res.name].urn if res is not None and res.name in by_name else None
                report(message, urn)
        return validate

    made: list[Any] = []
    for rule, fn in RESOURCE_RULES.items():
        info = RULES[rule]
        made.append(ResourceValidationPolicy(name=rule, description=info.description, validate=resource_validate(
            rule, fn), enforcement_level=levels[info.level], config_schema=schema(info), remediation_steps=info.help))
    for rule, stack_fn in STACK_RULES.items():
        info = RULES[rule]
        made.append(StackValidationPolicy(name=rule, description=info.description, validate=stack_validate(
            rule, stack_fn), enforcement_level=levels[info.level], config_schema=schema(info),
            remediation_steps=info.help))
    for rule, env_fn in ENVIRONMENT_RULES.items():
        info = RULES[rule]
        made.append(StackValidationPolicy(name=rule, description=info.description, validate=environment_validate(
            rule, env_fn), enforcement_level=levels[info.level], config_schema=schema(info),
            remediation_steps=info.help))
    return made
