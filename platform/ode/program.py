"""The Pulumi program of one stack: one bounded context in one environment.

Both ways of deploying run this same code:

- ``pulumi up -s dev.orders`` at the project's root runs ``__main__.py``, which calls :func:`main`: the stack's
  config (``ode:env``, ``ode:context``, ``ode:upstream``...) says what to deploy; without ``ode:upstream`` the
  producers' outputs are read through a StackReference to their stacks (``<org>/<project>/<env>.<producer>``);
- the engines are given a :class:`StackSpec` and run :func:`build`'s program (the pulumi engine through the same
  config, the simulated engine in-process under mocks with :func:`ode.engines.simulated.run_simulated`).

The program configures one explicit AWS provider for the environment (region, the deployment role where one is
set, default tags), instantiates the context's component, and exports one output per ``provides`` entry, named
after the interface, holding exactly the fields of its kind (:data:`ode.contracts.OUTPUT_FIELDS`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contracts import OUTPUT_FIELDS, AlarmSubscriptions, ContractLibrary, load_library, settings_context

#: Stack config keys (namespace ``ode``).
CONFIG_ENV, CONFIG_CONTEXT, CONFIG_BASE = "ode:env", "ode:context", "ode:baseEnv"
CONFIG_CONTRACTS, CONFIG_UPSTREAM, CONFIG_SECRETS = "ode:contractsDir", "ode:upstream", "ode:upstreamSecrets"
CONFIG_ENDPOINT, CONFIG_SECRET_KEYS = "ode:awsEndpoint", "ode:upstreamSecretKeys"
#: ``local`` deploys into an embedded AWS whose address is in :data:`ENDPOINT_VARIABLE` of the program's
#: environment: the address changes every run, so it stays out of the stack's config and fingerprint.
CONFIG_TARGET, ENDPOINT_VARIABLE = "ode:target", "ODE_AWS_ENDPOINT"
#: Extra default tags (JSON object), given to the stacks of environments made on demand (``ode:expires-at``...).
CONFIG_TAGS = "ode:tags"

#: AWS services whose endpoints point at an embedded AWS (``--target local``). One name per service: the provider
#: warns (and will refuse) when an alias (``cloudwatchevents``, ``cloudwatchlogs``) is set beside it.
LOCAL_SERVICES = ("apigateway", "apigatewayv2", "cloudfront", "cloudwatch", "dynamodb", "ec2", "ecr", "ecs", "elbv2",
                  "events", "iam", "kms", "lambda", "logs", "s3", "secretsmanager", "sfn", "sns", "sqs", "sts")


#: Upstream outputs handed to a consumer: producer context -> interface -> field -> value.
Upstream = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class StackSpec:
    """Everything needed to run one bounded context's stack in one environment.

    ``env`` is the environment's name (an ephemeral one included); ``base_env`` is the long-lived environment
    whose account, region and settings it takes (``env`` itself for long-lived ones).
    """

    project: str
    env: str
    context: str
    contracts_dir: Path
    base_env: str | None = None
    upstream: Upstream = field(default_factory=dict)
    #: (producer, interface, field) triples of ``upstream`` whose values are secret.
    secret_upstream: frozenset[tuple[str, str, str]] = frozenset()
    #: Extra stack config (``key: value``), e.g. provider endpoints for a local target.
    config: dict[str, str] = field(default_factory=dict)

    @property
    def stack_name(self) -> str:
        """The Pulumi stack name: ``<env>.<context>``."""
        return f"{self.env}.{self.context}"

    @property
    def settings_env(self) -> str:
        """The environment whose account, region, settings and overrides apply."""
        return self.base_env or self.env


def stack_config(spec: StackSpec) -> tuple[dict[str, str], dict[str, str]]:
    """The stack config of a spec: (plain values, secret values). Secret upstream outputs go to the second."""
    plain_up: dict[str, dict[str, dict[str, Any]]] = {}
    secret_up: dict[str, dict[str, dict[str, Any]]] = {}
    for producer, interfaces in spec.upstream.items():
        for interface, fields in interfaces.items():
            for name, value in (fields or {}).items():
                target = secret_up if (producer, interface, name) in spec.secret_upstream else plain_up
                target.setdefault(producer, {}).setdefault(interface, {})[name] = value
    plain = {CONFIG_ENV: spec.env, CONFIG_CONTEXT: spec.context, CONFIG_CONTRACTS: str(spec.contracts_dir),
             CONFIG_UPSTREAM: json.dumps(plain_up, sort_keys=True), **spec.config}
    if spec.base_env:
        plain[CONFIG_BASE] = spec.base_env
    secret: dict[str, str] = {}
    if secret_up:
        plain[CONFIG_SECRET_KEYS] = json.dumps(sorted(spec.secret_upstream))
        secret[CONFIG_SECRETS] = json.dumps(secret_up, sort_keys=True)
    return plain, secret


def build(spec: StackSpec, library: ContractLibrary) -> Callable[[], None]:
    """The program of ``spec``'s stack, ready for ``pulumi.runtime.run_in_stack`` or an inline Automation API
    program. Mistakes (an unknown context, a missing upstream output) raise ``ValueError`` naming them."""

    def program() -> None:
        _run(spec, library)

    return program


def _run(spec: StackSpec, library: ContractLibrary) -> None:
    import pulumi
    import pulumi_aws as aws

    # Deferred: the components import pulumi and pulumi_aws (seconds), which validating or planning never needs.
    from components import load
    from components.code import code_directories
    from components.common import AlarmRouting, ContextArgs, Grant, Identity, Subscription
    from components.kinds import KINDS

    if spec.context not in library.contexts:
        raise ValueError(f"ode:context: no context {spec.context!r} in {library.root}")
    ctx = library.contexts[spec.context]
    place = library.environment(spec.settings_env)
    contract_file = library.files.get(ctx.context) or library.root / f"{ctx.context}.yaml"
    settings = KINDS[ctx.component].settings.model_validate(ctx.settings_for(spec.settings_env),
                                                            context=settings_context(ctx, contract_file))
    identity = Identity(project=library.project, env=spec.env, context=ctx.context, owner=ctx.owner,
                        account=place.account, region=place.region,
                        protected=place.protected and spec.env == spec.settings_env)
    endpoint = spec.config.get(CONFIG_ENDPOINT)
    if not endpoint and spec.config.get(CONFIG_TARGET) == "local":
        endpoint = os.environ.get(ENDPOINT_VARIABLE)
        if not endpoint:
            raise ValueError(f"{CONFIG_TARGET}: local, but {ENDPOINT_VARIABLE} (the embedded AWS's address) is not set")
    extra_tags = json.loads(spec.config.get(CONFIG_TAGS) or "{}")
    provider_args: dict[str, Any] = {"region": place.region,
                                     "default_tags": {"tags": {**extra_tags, **identity.tags()}}}
    if endpoint:
        provider_args.update(
            endpoints=[{service: endpoint for service in LOCAL_SERVICES}], access_key="test", secret_key="test",
            skip_credentials_validation=True, skip_requesting_account_id=True, skip_metadata_api_check="true",
            s3_use_path_style=True)
    else:
        provider_args["allowed_account_ids"] = [place.account]
        if place.role_arn:
            provider_args["assume_roles"] = [{"role_arn": place.role_arn,
                                              "session_name": f"ode-{spec.env}-{spec.context}"[:64]}]
    provider = aws.Provider("aws", **provider_args)

    references: dict[str, pulumi.StackReference] = {}

    def upstream(producer: str, interface: str, kind: str) -> dict[str, Any]:
        if spec.upstream:
            found = spec.upstream.get(producer, {}).get(interface)
            if found is None:
                raise ValueError(f"{CONFIG_UPSTREAM}: no outputs of {producer}.{interface}, which "
                                 f"{spec.context} consumes")
            return {k: (pulumi.Output.secret(v) if (producer, interface, k) in spec.secret_upstream else v)
                    for k, v in found.items()}
        # Deployed by hand without the orchestrator: read the producer's stack.
        stack = f"{spec.env}.{producer}"
        if stack not in references:
            references[stack] = pulumi.StackReference(f"{producer}-ref",
                                                      stack_name=f"organization/{library.project}/{stack}")
        ref = references[stack].get_output(interface)
        return {name: ref.apply(functools.partial(_field, name=name)) for name in OUTPUT_FIELDS[kind]}

    grants: list[Grant] = []
    subscriptions: list[Subscription] = []
    for link in library.links(spec.context):
        if link.deploy:
            produced = library.contexts[link.producer]
            grants.append(Grant(link.producer, link.interface, link.kind, link.access,
                                upstream(link.producer, link.interface, link.kind), link.via,
                                component=produced.component,
                                routes=tuple(getattr(produced.provides.get(link.interface), "routes", None) or ())))
            continue
        bus = library.bus_of(link.producer)
        if bus is None:
            continue
        bus_outputs = upstream(bus[0], bus[1], "event-bus")
        subscriptions.append(Subscription(link.producer, link.interface, bus_outputs["name"], bus_outputs["arn"]))
    component_class, args_class = load(ctx.component)
    code_dirs = code_directories(settings.model_dump(), contract_file.resolve().parent)
    for field_name, folder in code_dirs.items():
        if not folder.is_dir():
            raise ValueError(f"settings.{field_name}: directory {folder} does not exist")
    code_dir = next(iter(code_dirs.values()), None)
    args: ContextArgs = args_class(
        identity=identity, settings=settings,
        provides={name: iface.model_dump(mode="json", exclude_none=True) for name, iface in ctx.provides.items()},
        grants=tuple(grants), subscriptions=tuple(subscriptions), code_dir=str(code_dir) if code_dir else None,
        alarms=alarm_routing(place.alarms, made_on_demand=spec.env != spec.settings_env, routing=AlarmRouting))
    component = component_class(spec.context, args, pulumi.ResourceOptions(provider=provider))
    for name in ctx.provides:
        if name not in component.interfaces:
            raise ValueError(f"provides.{name}: the {ctx.component} component made no outputs for it")
        pulumi.export(name, component.interfaces[name])


def alarm_routing(alarms: AlarmSubscriptions, *, made_on_demand: bool, routing: type[Any]) -> Any:
    """The components' ``AlarmRouting`` of an environment's ``alarms``. An environment made on demand notifies the
    same existing topic, but subscribes e-mail and HTTPS endpoints only when ``alarms.ephemeral`` says so: a
    confirmation mail per context and per pull request would teach people to ignore them."""
    subscribe = not made_on_demand or alarms.ephemeral
    return routing(email=tuple(alarms.email) if subscribe else (), https=tuple(alarms.https) if subscribe else (),
                   topic_arn=alarms.topic_arn)


def _field(outputs: dict[str, Any] | None, name: str) -> Any:
    return (outputs or {}).get(name)


def _secret_field(text: str, where: tuple[str, str, str]) -> Any:
    producer, interface, name = where
    return json.loads(text)[producer][interface][name]


def main() -> None:
    """The entry point of ``pulumi up`` (``__main__.py``): everything from the stack's config."""
    import pulumi

    config = pulumi.Config("ode")
    env = config.get("env") or pulumi.get_stack().split(".", 1)[0]
    context = config.get("context") or pulumi.get_stack().split(".", 1)[-1]
    contracts = Path(config.get("contractsDir") or Path.cwd() / "contracts")
    library = load_library(contracts)
    if pulumi.get_project() != library.project:
        # Pulumi.yaml's name and environments.yaml's project must agree: stack references, state paths and the
        # orchestrator's workspaces all use environments.yaml's.
        raise ValueError(f"Pulumi.yaml names project {pulumi.get_project()!r}, but {contracts}/environments.yaml "
                         f"says project: {library.project!r}; make them the same")
    upstream_text = config.get("upstream")
    upstream = json.loads(upstream_text) if upstream_text else {}
    # Secret upstream outputs: their places are plain config, their values stay secret Outputs.
    keys = [tuple(k) for k in json.loads(config.get("upstreamSecretKeys") or "[]")]
    secret_json = config.get_secret("upstreamSecrets")
    for producer, interface, name in keys:
        assert secret_json is not None, "ode:upstreamSecrets is missing"
        upstream.setdefault(producer, {}).setdefault(interface, {})[name] = secret_json.apply(
            functools.partial(_secret_field, where=(producer, interface, name)))
    secret_upstream = frozenset((str(p), str(i), str(n)) for p, i, n in keys)
    extra = {CONFIG_ENDPOINT: config.get("awsEndpoint") or "", CONFIG_TARGET: config.get("target") or "",
             CONFIG_TAGS: config.get("tags") or ""}
    spec = StackSpec(project=library.project, env=env, context=context, contracts_dir=contracts,
                     base_env=config.get("baseEnv"), upstream=upstream, secret_upstream=secret_upstream,
                     config={k: v for k, v in extra.items() if v})
    _run(spec, library)
