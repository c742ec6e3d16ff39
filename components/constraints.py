"""What AWS refuses that a contract alone shows, beyond what one settings model can check: a container port the
image does not expose, a network that cannot serve what an attached context uses, names AWS rejects, reserved
concurrency beyond an account's unreserved minimum.

Free of Pulumi imports, like ``kinds``: ``ode validate`` runs :func:`library_errors` from the contracts loader,
each error located at the setting it comes from. The deploy-time view of the same constraints (the planned
resources) is the policy rules' (``aws-value-constraints``, ``aws-combinations``, ``contract-reachable``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .kinds import KINDS, ContainerServiceSettings, EventWorkerSettings, FunctionSettings, Settings, WorkflowSettings
from .names import LIMITS, bucket_name, physical_name

#: Environment variable names Lambda sets itself and refuses from a function's configuration (Lambda developer
#: guide, "Defined runtime environment variables"; AWS_LAMBDA_EXEC_WRAPPER and the X-Ray variables stay settable).
LAMBDA_RESERVED = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_MAX_CONCURRENCY", "AWS_LAMBDA_METADATA_API",
    "AWS_LAMBDA_METADATA_TOKEN",
})
#: A name Lambda accepts for an environment variable.
LAMBDA_ENV_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
#: Lambda's limit on a function's variables, measured as the JSON map of names and values.
LAMBDA_ENV_BYTES = 4096

#: Concurrent executions Lambda always leaves unreserved in an account.
UNRESERVED_MINIMUM = 100
#: The smallest subnet a load balancer takes.
LB_PREFIX = 27
#: What Fargate needs to pull an image from the account's ECR and ship its logs without internet egress.
PULL_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "s3")
#: The AWS service a consumed interface kind is used through, from compute in a VPC.
SERVICE_OF = {"table": "dynamodb", "bucket": "s3", "queue": "sqs", "event-bus": "events", "workflow": "states",
              "secret": "secretsmanager"}


class AccountQuotas(BaseModel):
    """An environment's account quotas, where they differ from AWS's defaults (Service Quotas)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lambda_concurrency: int = Field(1000, ge=UNRESERVED_MINIMUM,
                                    description="Concurrent executions of the account's Lambda functions (AWS's "
                                                "default 1,000); 100 of them always stay unreserved.")


def lambda_environment_problems(variables: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    """(variable or None, problem) for a function's environment variables as Lambda would refuse them."""
    for key in variables:
        name = str(key)
        if name in LAMBDA_RESERVED or name.startswith("AWS_LAMBDA_"):
            yield name, f"{name} is reserved by Lambda"
        elif not LAMBDA_ENV_NAME.match(name):
            yield name, f"{name!r} is not a name Lambda accepts ([a-zA-Z][a-zA-Z0-9_]+: a letter, then at least " \
                        "one letter, digit or '_')"
    size = len(json.dumps({str(k): str(v) for k, v in variables.items()}, separators=(",", ":")).encode())
    if size > LAMBDA_ENV_BYTES:
        yield None, f"the variables take {size} bytes, more than Lambda's {LAMBDA_ENV_BYTES} (4 KB, with the " \
                    "variables ode adds on top)"


# ---------------------------------------------------------------------------------------------------------------
# What a Dockerfile exposes


def exposed_ports(dockerfile: Path) -> set[tuple[int, str]] | None:
    """The (port, protocol) pairs a Dockerfile's final stage exposes (EXPOSE in that stage and the stages it
    builds on, ``8080``, ``8080/tcp``, ``7000-7002``, ARG and ENV defaults substituted); None when it cannot be
    known (no EXPOSE at all, a variable without a default, a base image from a registry that may expose more)."""
    from dockerfile_parse import DockerfileParser  # parses continuations, comments and the escape directive

    try:
        with dockerfile.open("rb") as handle:
            parser = DockerfileParser(fileobj=handle)
            instructions = list(parser.structure)
    except (OSError, ValueError):
        return None
    stages: list[dict[str, Any]] = []
    globals_: dict[str, str] = {}
    for ins in instructions:
        kind, value = ins["instruction"], str(ins["value"])
        if kind == "FROM":
            words = value.split()
            base = words[0] if words else ""
            alias = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            parent = next((s for s in stages if s["alias"] == base.lower()), None)
            stages.append({"alias": alias, "ports": set(parent["ports"]) if parent else set(),
                           "vars": dict(parent["vars"]) if parent else dict(globals_), "unknown":
                           parent["unknown"] if parent else False})
        elif kind in ("ARG", "ENV"):
            target = stages[-1]["vars"] if stages else globals_
            for name, default in _assignments(value):
                if default is not None:
                    target[name] = _substitute(default, target) or default
                elif kind == "ARG" and stages:
                    target.setdefault(name, globals_.get(name, ""))
        elif kind == "EXPOSE" and stages:
            for word in value.split():
                text = _substitute(word, stages[-1]["vars"])
                match = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", (text or "").lower())
                if match is None:
                    stages[-1]["unknown"] = True
                    continue
                low, high = int(match.group(1)), int(match.group(2) or match.group(1))
                proto = match.group(3) or "tcp"
                stages[-1]["ports"].update((p, proto) for p in range(low, min(high, 65535) + 1))
    if not stages or stages[-1]["unknown"] or not stages[-1]["ports"]:
        return None
    return set(stages[-1]["ports"])


def _assignments(value: str) -> Iterator[tuple[str, str | None]]:
    """``A=1 B="x y"``, ``NAME`` or the legacy ``ENV NAME value`` form."""
    import shlex

    try:
        words = shlex.split(value)
    except ValueError:
        return
    if len(words) >= 2 and "=" not in words[0]:
        yield words[0], " ".join(words[1:])
        return
    for word in words:
        name, sep, default = word.partition("=")
        yield name, default if sep else None


def _substitute(text: str, values: Mapping[str, str]) -> str | None:
    """``$VAR``/``${VAR}``/``${VAR:-default}`` replaced; None when a variable has no value."""
    missing = False

    def repl(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1) or match.group(2)
        default = match.group(3)
        if values.get(name):
            return values[name]
        if default is not None:
            return default
        missing = True
        return ""

    out = re.sub(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})", repl, text)
    return None if missing else out


# ---------------------------------------------------------------------------------------------------------------
# Names AWS refuses

#: AWS's rule for each kind of physical name ode makes (the ``LIMITS`` keys), beyond its length.
NAME_RULES: dict[str, tuple[str, str]] = {
    "lambda": (r"^[a-zA-Z0-9_-]+$", "Lambda function names take letters, digits, '-' and '_'"),
    "iam-role": (r"^[\w+=,.@-]+$", "IAM role names take letters, digits and +=,.@_-"),
    "sqs": (r"^[a-zA-Z0-9_-]+$", "SQS queue names take letters, digits, '-' and '_'"),
    "dynamodb": (r"^[a-zA-Z0-9_.-]+$", "DynamoDB table names take letters, digits, '.', '-' and '_'"),
    "event-bus": (r"^(?!aws\.)[/.\-_A-Za-z0-9]+$", "EventBridge bus names take letters, digits and ./-_"),
    "event-rule": (r"^[.\-_A-Za-z0-9]+$", "EventBridge rule names take letters, digits and .-_"),
    "log-group": (r"^[.\-_/#A-Za-z0-9]+$", "log group names take letters, digits and .-_/#"),
    "state-machine": (r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/]+$", "state machine names take no spaces or punctuation"),
    "ecs-cluster": (r"^[a-zA-Z0-9_-]+$", "ECS cluster names take letters, digits, '-' and '_'"),
    "ecs-service": (r"^[a-zA-Z0-9_-]+$", "ECS service names take letters, digits, '-' and '_'"),
    "alb": (r"^(?!internal-)[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$",
            "load balancer names take letters, digits and '-', and never start with 'internal-'"),
    "target-group": (r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$", "target group names take letters, digits and '-'"),
    "sns": (r"^[a-zA-Z0-9_-]+$", "SNS topic names take letters, digits, '-' and '_'"),
    "dashboard": (r"^[a-zA-Z0-9_-]+$", "dashboard names take letters, digits, '-' and '_'"),
}
_BUCKET = re.compile(r"^(?!xn--|sthree-|amzn-s3-demo-)(?!.*\.\.)(?!.*\.-|.*-\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ECR = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")


def name_errors(project: str, env: str, context: str, account: str) -> list[str]:
    """Why AWS would refuse the physical names ode makes from ``project`` (one line per kind of name)."""
    problems = []
    for kind, (pattern, why) in NAME_RULES.items():
        if kind not in LIMITS:
            continue
        name = physical_name((project, env, context, "x"), kind)
        if not re.match(pattern, name):
            problems.append(f"{why} ({name!r})")
    bucket = bucket_name(project, env, context, "x", account)
    if not _BUCKET.match(bucket):
        problems.append(f"S3 bucket names take lowercase letters, digits, '-' and '.', start and end with a letter or "
                        f"digit, and never start with xn-- or sthree- ({bucket!r})")
    repo = physical_name((project, env, context, "repo"), 256).lower()
    if not _ECR.match(repo):
        problems.append(f"ECR repository names take lowercase letters and digits separated by one '.', '_' or '-' "
                        f"({repo!r})")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# The library


def _model(kind: str, raw: Mapping[str, Any], contract_dir: Path | None) -> Settings | None:
    try:
        return KINDS[kind].settings.model_validate(dict(raw), context={"contract_dir": contract_dir})
    except ValidationError:
        return None  # its own errors are reported by the loader


def _where(ctx: Any, env: str, key: str, *rest: str | int) -> tuple[str | int, ...]:
    """Where a setting of ``env`` stands: in ``overrides`` where the environment overrides it."""
    return ("overrides", env, key, *rest) if key in ctx.overrides.get(env, {}) else ("settings", key, *rest)


def _functions(settings: Settings) -> int:
    """How many Lambda functions a context's settings make (at least; a kind may add more)."""
    if isinstance(settings, WorkflowSettings):
        return len(settings.steps)
    return 1 if isinstance(settings, FunctionSettings) else 0


def _own_ecr(image: str, account: str, region: str) -> bool:
    return re.match(rf"^{re.escape(account)}\.dkr\.ecr\.{re.escape(region)}\.amazonaws\.com(\.cn)?/", image) is not None


def library_errors(library: Any, envs: Iterable[str], validated: Mapping[tuple[str, str], Settings] | None = None,
                   ) -> Iterator[tuple[str | None, tuple[str | int, ...], str]]:
    """Every AWS refusal a contracts library shows: (context, or None for environments.yaml; location; message).
    ``library`` is an ``ode.contracts.ContractLibrary`` (passed in: components never import ode); ``validated``
    holds the settings models already made, by (context, environment): a context without one there has settings
    with errors of their own."""
    env_file = library.environments
    names = [e for e in envs if e in env_file.environments]
    first = next(iter(library.contexts), "context")
    if names:
        place = env_file.environments[names[0]]
        problems = name_errors(env_file.project, names[0], first, place.account)
        if problems:
            yield None, ("project",), f"AWS refuses the names ode makes from project {env_file.project!r}: " + \
                "; ".join(problems)
    reserved: dict[str, list[tuple[int, str, str]]] = {}
    for env in names:
        place = env_file.environments[env]
        models: dict[str, Settings] = {}
        for name, ctx in library.contexts.items():
            if not ctx.deployed_in(env):
                continue
            path = library.files.get(name)
            model = _model(ctx.component, ctx.settings_for(env), path.parent if path else None) \
                if validated is None else validated.get((name, env))
            if model is not None:
                models[name] = model
        for name, settings in models.items():
            ctx = library.contexts[name]
            path = library.files.get(name)
            for loc, message in _context_errors(ctx, env, settings, path.parent if path else None, place.region):
                yield name, loc, message
            if isinstance(settings, FunctionSettings) and settings.reserved_concurrency:
                reserved.setdefault(place.account, []).append(
                    (settings.reserved_concurrency * _functions(settings), name, env))
            yield from _attachment_errors(library, name, env, settings, models)
    for account, parts in reserved.items():
        limits = [getattr(p, "quotas", None) for p in env_file.environments.values() if p.account == account]
        limit = max((q.lambda_concurrency for q in limits if q is not None), default=1000)
        total = sum(n for n, _, _ in parts)
        if total > limit - UNRESERVED_MINIMUM:
            n, name, env = max(parts)
            ctx = library.contexts[name]
            shown = ", ".join(f"{c} {k} in {e}" for k, c, e in sorted(parts, reverse=True))
            yield name, _where(ctx, env, "reserved_concurrency"), \
                f"the functions of account {account} reserve {total} concurrent executions ({shown}); AWS keeps " \
                f"{UNRESERVED_MINIMUM} of its {limit} unreserved, so at most {limit - UNRESERVED_MINIMUM} can be " \
                "reserved (quotas.lambda_concurrency in environments.yaml gives the account's real limit)"


def _context_errors(ctx: Any, env: str, settings: Settings, contract_dir: Path | None, region: str,
                    ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    topic_region = (settings.alarm_topic_arn or "").split(":")[3:4]
    if topic_region and topic_region[0] != region:
        yield _where(ctx, env, "alarm_topic_arn"), f"the topic is in {topic_region[0]}, and CloudWatch alarms in " \
                                                   f"{region} notify only topics of their own region"
    if isinstance(settings, FunctionSettings):
        for key, problem in lambda_environment_problems(settings.environment):
            if key is not None and key.upper().startswith("AWS_") and not key.startswith("AWS_LAMBDA_"):
                continue  # the settings model refuses AWS_ names already
            yield _where(ctx, env, "environment", *([key] if key else [])), problem
    if isinstance(settings, EventWorkerSettings) and settings.batching_window_s:
        queues = [(n, i) for n, i in ctx.provides.items() if i.kind == "queue"]
        if queues and getattr(queues[0][1], "fifo", False):
            yield _where(ctx, env, "batching_window_s"), \
                f"Lambda refuses a batching window on a FIFO queue ({queues[0][0]} is its work queue): set 0"
    if isinstance(settings, ContainerServiceSettings) and settings.build and contract_dir is not None:
        dockerfile = (contract_dir / settings.build / "Dockerfile").resolve()
        ports = exposed_ports(dockerfile)
        if ports is not None and (settings.container_port, "tcp") not in ports:
            shown = ", ".join(f"{p}/{proto}" for p, proto in sorted(ports)[:8])
            yield _where(ctx, env, "container_port"), \
                f"{settings.container_port} is not a port the image exposes (its Dockerfile's EXPOSE: {shown})"


def _network_of(library: Any, name: str) -> tuple[int, str, str] | None:
    """(consumes index, network context, interface) of the network ``name`` attaches to."""
    ctx = library.contexts.get(name)
    for i, entry in ctx.numbered_consumes() if ctx is not None else ():
        producer = library.contexts.get(entry.context)
        iface = producer.provides.get(entry.interface) if producer else None
        if iface is not None and iface.kind == "network":
            return i, entry.context, entry.interface
    return None


def _attachment_errors(library: Any, name: str, env: str, settings: Settings, models: Mapping[str, Settings],
                       ) -> Iterator[tuple[str | None, tuple[str | int, ...], str]]:
    """What a context attached to a network needs from it: endpoints or NAT for the AWS services it uses, NAT
    for images and APIs on the internet, public subnets for a public service, subnets a load balancer fits in."""
    ctx = library.contexts[name]
    attached = _network_of(library, name)
    if attached is None:
        for i, entry in ctx.numbered_consumes():
            producer = library.contexts.get(entry.context)
            iface = producer.provides.get(entry.interface) if producer else None
            # The producer's network is looked up last: only a container's API needs it.
            if iface is not None and iface.kind == "http-api" and producer.component == "container-service" \
                    and not producer.settings_for(env).get("public") \
                    and (home := _network_of(library, entry.context)) is not None:
                yield name, ("consumes", i), f"{entry.context}/{entry.interface} is an internal load balancer in " \
                                             f"network {home[1]}: consume that network with access attach to reach it"
        return
    index, network, _ = attached
    net = models.get(network)
    if net is None:
        return
    nat = str(getattr(net, "nat", "none") or "none")
    public_subnets = bool(getattr(net, "public_subnets", False)) or nat != "none"
    endpoints = set(getattr(net, "endpoints", ()))
    place = library.environments.environments[env]
    where = ("consumes", index)
    label = f"network {network}"
    if isinstance(settings, ContainerServiceSettings):
        missing = [e for e in PULL_ENDPOINTS if e not in endpoints]
        if missing and nat == "none":
            yield name, where, f"{label} has neither the {', '.join(missing)} endpoints nor NAT (nat: none): " \
                               "Fargate cannot pull the image or ship its logs"
        image = settings.image or (None if settings.build else settings.default_image)
        if image is not None and not _own_ecr(image, place.account, place.region) and nat == "none":
            yield name, _where(ctx, env, "image") if settings.image else ("settings",), \
                f"image {image} is outside the context's own ECR ({place.account}, {place.region}) and {label} " \
                "has no NAT (nat: none): the tasks cannot pull it; use settings.build or give the network nat"
        if getattr(settings, "public", False) and not public_subnets:
            yield name, _where(ctx, env, "public"), f"public: true needs public subnets, and {label} has none " \
                                                    "(public_subnets: false and nat: none)"
        cidr = ipaddress.ip_network(str(getattr(net, "cidr", "10.0.0.0/16")), strict=False)
        needed = int(getattr(net, "az_count", 2)) * (2 if public_subnets else 1)
        capacity = 2 ** max(0, LB_PREFIX - cidr.prefixlen) if cidr.prefixlen <= LB_PREFIX else 0
        if capacity < needed:
            yield network, _where(library.contexts[network], env, "cidr"), \
                f"{cidr} cannot hold {needed} subnets of /{LB_PREFIX}, the smallest a load balancer takes, and " \
                f"{name} (a container-service) attaches to it"
    needs: list[tuple[str, str, tuple[str | int, ...]]] = []
    for i, entry in ctx.numbered_consumes():
        producer = library.contexts.get(entry.context)
        iface = producer.provides.get(entry.interface) if producer else None
        if iface is None or producer is None:
            continue
        access = entry.access_for(iface.kind)
        if iface.kind in SERVICE_OF and (iface.kind != "event-bus" or access == "publish"):
            needs.append((SERVICE_OF[iface.kind], f"{entry.context}/{entry.interface}", ("consumes", i)))
        elif iface.kind == "http-api":
            if producer.component == "container-service" and not producer.settings_for(env).get("public"):
                theirs = _network_of(library, entry.context)
                if theirs is not None and theirs[1] != network:
                    yield name, ("consumes", i), f"{entry.context}/{entry.interface} is an internal load balancer " \
                                                 f"in network {theirs[1]}, and {name} runs in {network}"
            elif nat == "none":
                what = "a public HTTPS endpoint" if producer.component == "container-service" else \
                    "an API Gateway HTTP API, which is only reachable over the internet"
                yield name, ("consumes", i), f"{entry.context}/{entry.interface} is {what}, and {label} has no NAT " \
                                             "(nat: none) for the compute attached to it"
    if isinstance(settings, FunctionSettings):
        for iface_name, iface in ctx.provides.items():
            if iface.kind in ("table", "bucket"):
                needs.append((SERVICE_OF[iface.kind], f"its own {iface.kind} {iface_name}", ("provides", iface_name)))
    if nat != "none":
        return
    for service, what, loc in needs:
        if service not in endpoints:
            yield name, loc, f"{what} is reached through {service}, and {label} has no {service} endpoint and no " \
                             "NAT (nat: none)"
