"""Compliance, security and AWS-fidelity rules, written once and run two ways.

The rule functions of this package are plain functions over resources (type, name, inputs, parent,
dependencies) and over the contracts library. ``policies/__main__.py`` registers them in a Pulumi CrossGuard policy
pack, so that ``pulumi up --policy-pack policies`` runs them; ``ode check`` and the deploy gate run the very same
functions in-process over each stack's recorded resources::

    policies = Policies(library, "prod")
    violations = policies.check_stack("orders", resources, upstream)     # levels, configuration and waivers applied
    report = Report("prod", violations); report.ok; report.to_dict()

The gate that runs the mandatory rules before an engine previews or deploys a stack is :mod:`ode.policy.gate`;
``ode check`` over a whole environment is :func:`ode.policy.environment.check_environment`.

Four scopes (``ode.contracts.policies.RULES`` says which rule has which): resource rules see one resource, stack
rules see a stack's whole resource graph, library rules see the contracts, environment rules see every stack of an
environment at once (``policies.check_environment(view)``, the edges between contexts)::

    view = environment_view(library, "prod", {"orders": resources, ...}, outputs)
    violations = policies.check_environment(view)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on first use (see __getattr__)
    from ._environment import ENVIRONMENT_RULES, edges_of, environment_findings, environment_view, view_from_bounds
    from ._evaluate import Policies, PolicyViolationError, Report, Violation, resources_from
    from ._library_rules import LIBRARY_RULES, cross_account_consumption, no_plaintext_secrets, secret_kinds
    from ._model import (
        Bounds,
        Consumed,
        Edge,
        EnvView,
        Res,
        Statement,
        action_exists,
        provider_default_tags,
        star_only,
        statements,
    )
    from ._pack import crossguard_policies
    from ._resource_rules import RESOURCE_RULES
    from ._stack_rules import STACK_RULES, bounds_for, resource_findings

#: Public name -> the module of this package that defines it.
_WHERE = {
    **dict.fromkeys(("ENVIRONMENT_RULES", "edges_of", "environment_findings", "environment_view", "view_from_bounds"),
                    "._environment"),
    **dict.fromkeys(("Policies", "PolicyViolationError", "Report", "Violation", "resources_from"), "._evaluate"),
    **dict.fromkeys(("LIBRARY_RULES", "cross_account_consumption", "no_plaintext_secrets", "secret_kinds"),
                    "._library_rules"),
    **dict.fromkeys(("Bounds", "Consumed", "Edge", "EnvView", "Res", "Statement", "action_exists",
                     "provider_default_tags", "star_only", "statements"), "._model"),
    "crossguard_policies": "._pack",
    "RESOURCE_RULES": "._resource_rules",
    **dict.fromkeys(("STACK_RULES", "bounds_for", "resource_findings"), "._stack_rules"),
}

__all__ = [
    "ENVIRONMENT_RULES",
    "LIBRARY_RULES",
    "RESOURCE_RULES",
    "STACK_RULES",
    "Bounds",
    "Consumed",
    "Edge",
    "EnvView",
    "Policies",
    "PolicyViolationError",
    "Report",
    "Res",
    "Statement",
    "Violation",
    "action_exists",
    "bounds_for",
    "cross_account_consumption",
    "crossguard_policies",
    "edges_of",
    "environment_findings",
    "environment_view",
    "no_plaintext_secrets",
    "provider_default_tags",
    "resource_findings",
    "resources_from",
    "secret_kinds",
    "star_only",
    "statements",
    "view_from_bounds",
]


def __getattr__(name: str) -> Any:
    # The rules import their catalogues (policy_sentry, botocore's models, detect-secrets) as they run; this package
    # itself stays cheap to import, so that opening the gate (ode.policy.gate) costs nothing until a stack is checked.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
