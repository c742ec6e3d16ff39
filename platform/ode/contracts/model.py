"""The contract language: pydantic models of a bounded context and of ``environments.yaml``.

Input models forbid unknown fields (a typo is an error, not a silent default); every field carries the description
that becomes the JSON Schema editors validate against (:mod:`ode.contracts.schema`). Reading files and naming the line
of a mistake is :mod:`ode.contracts.loading`'s job; the rules that span files are :mod:`ode.contracts.rules`'.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from components.constraints import AccountQuotas
from components.emits import DEFAULT_ROUTE
from components.kinds import KINDS

from .policies import RuleSetting, Waiver, check_policies
from .versions import Version, VersionRange

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
INTERFACE_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,63}$"
ENVIRONMENTS_FILE = "environments.yaml"


class InterfaceKind(StrEnum):
    EVENT = "event"
    EVENT_BUS = "event-bus"
    HTTP_API = "http-api"
    TABLE = "table"
    BUCKET = "bucket"
    QUEUE = "queue"
    WORKFLOW = "workflow"
    NETWORK = "network"
    SECRET = "secret"


#: The accesses a consumer may ask for, per interface kind; the first is the default.
ACCESS: dict[str, tuple[str, ...]] = {
    "event": ("subscribe",),
    "event-bus": ("publish",),
    "http-api": ("invoke",),
    "table": ("read", "write", "read-write"),
    "bucket": ("read", "write", "read-write"),
    "queue": ("send", "consume"),
    "workflow": ("start",),
    "network": ("attach",),
    "secret": ("read",),
}

#: The outputs a stack exports for each interface it provides, per kind (fixed names, see ``ode.program``).
OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "event": ("bus_name", "bus_arn", "source", "detail_type"),
    "event-bus": ("name", "arn"),
    "http-api": ("url", "id", "execution_arn"),
    "table": ("name", "arn"),
    "bucket": ("name", "arn"),
    "queue": ("name", "url", "arn"),
    "workflow": ("name", "arn"),
    "network": ("vpc_id", "private_subnet_ids", "security_group_id", "cidr", "public_subnet_ids", "nat"),
    "secret": ("name", "arn"),
}
#: Output fields whose empty list is a value, not a missing output (a network without public subnets).
MAY_BE_EMPTY = frozenset({"public_subnet_ids"})


def is_deploy_kind(kind: str) -> bool:
    """Whether consuming an interface of this kind needs the producer deployed first (events do not)."""
    return kind != "event"


_DURATION = re.compile(r"([0-9]{1,12})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest duration the contract language accepts (a TTL or its maximum): ten years.
MAX_DURATION_SECONDS = 3650 * 86400


def parse_duration(text: str) -> int:
    """Seconds in a duration written ``90s``, ``30m``, ``8h`` or ``2d`` (at most 3650d); ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(str(text).strip()) if isinstance(text, str | int) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 8h or 2d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is longer than the longest duration accepted (3650d)")
    return seconds


def _semver(value: str) -> str:
    Version.parse(value)
    return value


class _Input(BaseModel):
    """Models of files users write: an unknown field is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _InterfaceBase(_Input):
    version: str = Field(description="Semantic version of this interface (MAJOR.MINOR.PATCH).")
    description: str | None = Field(None, description="What this interface offers.")

    _check_version = field_validator("version")(_semver)


class EventInterface(_InterfaceBase):
    kind: Literal["event"] = Field(description="An EventBridge event: source = context, detail-type = name.")
    event_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        alias="schema",
        description="JSON Schema of the event's detail.",
    )

    @field_validator("event_schema")
    @classmethod
    def _schema_is_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "type" in value and value["type"] != "object":
            raise ValueError("an event's detail is a JSON object: its schema's type must be 'object'")
        return value


_ROUTE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /[^\s]*$")


class RoutePayload(_Input):
    """What one route of an HTTP API takes and gives, as JSON Schemas (checked by ``ode diff``)."""

    request: dict[str, Any] | None = Field(None, description="JSON Schema of the body a consumer sends.")
    response: dict[str, Any] | None = Field(None, description="JSON Schema of the body a consumer gets back.")


class HttpApiInterface(_InterfaceBase):
    kind: Literal["http-api"] = Field(description="An API Gateway HTTP API.")
    routes: list[str] = Field(default_factory=list, description="Routes, as 'METHOD /path/{param}'.")
    payloads: dict[str, RoutePayload] = Field(
        default_factory=dict, description="Per route (as listed in `routes`): the request and response bodies."
    )

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: list[str]) -> list[str]:
        for route in value:
            if not _ROUTE.match(route):
                raise ValueError(f"route {route!r} is not 'METHOD /path' (GET, POST, PUT, PATCH, DELETE, ...)")
        if len(set(value)) != len(value):
            raise ValueError("a route is listed twice")
        return value

    @model_validator(mode="after")
    def _payloads_of_routes(self) -> HttpApiInterface:
        for route in self.payloads:
            if route not in self.routes:
                raise ValueError(f"payloads: {route!r} is not one of the routes ({', '.join(self.routes) or 'none'})")
        return self


class TableInterface(_InterfaceBase):
    kind: Literal["table"] = Field(description="A DynamoDB table.")
    partition_key: str = Field("id", description="Partition key attribute (string).")
    sort_key: str | None = Field(None, description="Sort key attribute (string), if any.")


class EventBusInterface(_InterfaceBase):
    kind: Literal["event-bus"] = Field(description="An EventBridge event bus.")


class BucketInterface(_InterfaceBase):
    kind: Literal["bucket"] = Field(description="An S3 bucket.")


class QueueInterface(_InterfaceBase):
    kind: Literal["queue"] = Field(description="An SQS queue.")
    fifo: bool = Field(False, description="A FIFO queue.")


class WorkflowInterface(_InterfaceBase):
    kind: Literal["workflow"] = Field(description="A Step Functions state machine.")


class NetworkInterface(_InterfaceBase):
    kind: Literal["network"] = Field(description="A VPC with private subnets.")


class SecretInterface(_InterfaceBase):
    kind: Literal["secret"] = Field(description="A Secrets Manager secret.")


Interface = Annotated[
    EventInterface
    | EventBusInterface
    | HttpApiInterface
    | TableInterface
    | BucketInterface
    | QueueInterface
    | WorkflowInterface
    | NetworkInterface
    | SecretInterface,
    Field(discriminator="kind"),
]


class Consumes(_Input):
    """One interface that a context uses from another, and how."""

    context: str = Field(pattern=NAME_PATTERN, description="The producing bounded context.")
    interface: str = Field(description="The interface's name in the producer's `provides`.")
    access: str | None = Field(None, description="How it is used; left out, the first access of its kind.")
    version: str | None = Field(None, description="Accepted versions: ^1.2, ~1.2.3, >=1.0,<2, 1.x, *.")

    @field_validator("version")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            VersionRange.parse(value)
        return value

    def access_for(self, kind: str) -> str:
        """The access asked for, or the default one of the interface's kind."""
        return self.access or ACCESS[kind][0]


class Context(_Input):
    """A bounded context: what it provides, what it consumes, and which component deploys it."""

    context: str = Field(
        pattern=NAME_PATTERN, description="Unique name: lowercase letters, digits and '-', starts with a letter."
    )
    owner: str = Field(min_length=1, description="Who answers for this context.")
    version: str = Field(description="Semantic version of this contract.")
    description: str | None = Field(None, description="What this context does.")
    component: str = Field(description="Kind of ComponentResource that deploys it: " + ", ".join(sorted(KINDS)))
    settings: dict[str, Any] = Field(default_factory=dict, description="The component's own settings.")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-environment settings, merged over `settings`."
    )
    environments: list[str] | None = Field(
        None, description="Environments it is deployed to; left out, every environment."
    )
    provides: dict[Annotated[str, Field(pattern=INTERFACE_PATTERN)], Interface] = Field(
        default_factory=dict, description="Interfaces this context offers, by name."
    )
    consumes: list[Consumes] = Field(default_factory=list, description="Interfaces it uses from other contexts.")
    waivers: list[Waiver] = Field(default_factory=list, description="Policy rules this context is exempt from.")

    _check_version = field_validator("version")(_semver)

    @field_validator("component")
    @classmethod
    def _known_component(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown component kind {value!r}{did_you_mean(value, KINDS)}; "
                             f"known: {', '.join(sorted(KINDS))}")
        return value

    #: Where each ``consumes`` entry stands in the file, when entries with errors of their own were dropped.
    _positions: list[int] | None = PrivateAttr(None)
    #: Interfaces the file declares but that were dropped for errors of their own (no "no such interface" then).
    _dropped: frozenset[str] = PrivateAttr(frozenset())

    @property
    def dropped(self) -> frozenset[str]:
        """Interfaces the file declares that were dropped for errors of their own."""
        # Read from pydantic's store of private attributes directly: the attribute hook is the slow path, and
        # the rules ask for this once per consumed interface.
        return (self.__pydantic_private__ or {}).get("_dropped") or frozenset()

    def numbered_consumes(self) -> list[tuple[int, Consumes]]:
        """The ``consumes`` entries with their index in the file (exact even when some were dropped)."""
        positions = (self.__pydantic_private__ or {}).get("_positions")
        return list(zip(positions or range(len(self.consumes)), self.consumes, strict=False))

    def deployed_in(self, env: str) -> bool:
        """Whether this context is deployed to ``env`` (contexts without `environments` are everywhere)."""
        return self.environments is None or env in self.environments

    def settings_for(self, env: str) -> dict[str, Any]:
        """`settings` with the environment's `overrides` merged over them (nested mappings merged too)."""
        return _merge(self.settings, self.overrides.get(env, {}))


def settings_context(ctx: Context, path: Path | None) -> dict[str, Any]:
    """What a component's settings are checked against beside themselves: the contract's directory (code
    directories must exist), whether the context provides a FIFO queue (Lambda takes at most 10 from one), and what
    ``emits`` may name: the events it provides, its APIs' routes, the interfaces it consumes."""
    found: dict[str, Any] = {"contract_dir": path.parent if path else None,
                             "fifo_queue": any(i.kind == "queue" and i.fifo for i in ctx.provides.values())}
    # What ``emits`` may name is gathered only for settings that have it (a library of thousands has few).
    if "emits" in ctx.settings or any("emits" in o for o in ctx.overrides.values() if isinstance(o, dict)):
        found.update(events=[name for name, i in ctx.provides.items() if i.kind == "event"],
                     routes=[r for i in ctx.provides.values() if isinstance(i, HttpApiInterface)
                             for r in (i.routes or [DEFAULT_ROUTE])],
                     consumed=[c.interface for c in ctx.consumes])
    return found


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: An e-mail address as SNS takes it: something@domain.tld, no spaces.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
#: An SNS topic ARN.
TOPIC_ARN_PATTERN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$"


class AlarmSubscriptions(_Input):
    """Who hears an environment's alarms: each context's alarm topic is subscribed to these e-mail addresses and
    HTTPS endpoints, or every alarm notifies an existing topic instead (``topic_arn``). A contract's
    ``settings.alarm_topic_arn`` wins over both."""

    email: list[Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]] = Field(
        default_factory=list, description="E-mail addresses subscribed to the alarm topics (each confirms once per "
                                          "topic, from the message AWS sends).")
    https: list[Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=list, description="HTTPS endpoints (a chat webhook...) subscribed to the alarm topics; they "
                                          "must confirm the subscription as SNS asks. https:// only.")
    topic_arn: str | None = Field(None, pattern=TOPIC_ARN_PATTERN,
                                  description="An existing SNS topic that every alarm notifies; no topic is made.")
    ephemeral: bool = Field(False, description="Environments made on demand from this one subscribe the same "
                                               "addresses too (by default they get their topics, unsubscribed: no "
                                               "confirmation mail per pull request).")

    @field_validator("https")
    @classmethod
    def _https_only(cls, value: list[str]) -> list[str]:
        for i, url in enumerate(value):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
                raise ValueError(f"{i}: {url!r} is not an https:// URL (alarms leave the account only over TLS)")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> AlarmSubscriptions:
        if self.topic_arn and (self.email or self.https):
            raise ValueError("topic_arn: an existing topic replaces the alarm topics, so it takes no email or https "
                             "here (subscribe them to that topic)")
        return self


class EventsSetting(_Input):
    """Where an environment's lifecycle events go (``events: {bus: NAME}`` in environments.yaml)."""

    bus: str = Field(pattern=r"^[A-Za-z0-9/_.-]{1,256}$",
                     description="Name (or ARN) of the EventBridge bus that receives ode's lifecycle events "
                                 "(StackSucceeded, StackFailed, EnvironmentCreated, ...; docs/lifecycle-events.md).")


class Environment(_Input):
    """A long-lived environment: where its stacks go."""

    account: str = Field(pattern=r"^\d{12}$", description="AWS account id (12 digits).")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region.")
    protected: bool = Field(False, description="Never destroyed by ode; stateful resources are protected.")
    role_arn: str | None = Field(None, description="IAM role that deployments to this environment assume.")
    policies: dict[str, RuleSetting] = Field(default_factory=dict, description="Policy rules: a level, or a level "
                                             "with the rule's configuration.")

    alarms: AlarmSubscriptions = Field(default_factory=AlarmSubscriptions,  # type: ignore[arg-type]
                                       description="Who hears the alarms of the environment's contexts.")
    publish: Literal["ssm"] | None = Field(None, description="ssm: each stack's outputs are published to SSM "
                                           "Parameter Store at /ode/<project>/<env>/<context>/<interface> (JSON; "
                                           "SecureString where secret), for tooling and consumers in other "
                                           "repositories. Environments made on demand follow their base.")
    events: EventsSetting | None = Field(None, description="Lifecycle events of this environment (and of those "
                                         "made on demand from it) go to this EventBridge bus.")
    # ode check (aws-combinations) and ode validate read the account's quotas from here.
    quotas: AccountQuotas = Field(default_factory=AccountQuotas,  # type: ignore[arg-type]
                                  description="The account's quotas where they differ from AWS's defaults.")

    _policies = field_validator("policies", mode="before")(check_policies)


class EphemeralPolicy(_Input):
    """How environments made on demand (per branch, per pull request) are made."""

    base: str = Field(description="Environment they are cloned from: account, region, settings.")
    ttl: str = Field("8h", description="Default time to live: 90s, 30m, 8h, 2d.")
    max_ttl: str = Field("72h", description="Longest time to live that may be asked for.")
    reuse: list[str] = Field(default_factory=list, description="Contexts taken from the base, not cloned.")

    @field_validator("ttl", "max_ttl")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _ttl_within_max(self) -> EphemeralPolicy:
        if parse_duration(self.ttl) > parse_duration(self.max_ttl):
            raise ValueError(f"ttl: {self.ttl} is longer than max_ttl {self.max_ttl}")
        return self


class EnvironmentsFile(_Input):
    """``environments.yaml``: the Pulumi project name, the environments, the ephemeral policy."""

    project: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description="The Pulumi project name.")
    environments: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Environment] = Field(
        description="Long-lived environments by name."
    )
    ephemeral: EphemeralPolicy | None = Field(None, description="Policy of environments made on demand.")

    @model_validator(mode="after")
    def _base_exists(self) -> EnvironmentsFile:
        if self.ephemeral and self.ephemeral.base not in self.environments:
            raise ValueError(
                f"ephemeral.base: environment {self.ephemeral.base!r} is not in environments "
                f"({', '.join(self.environments)})"
            )
        return self


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or nothing when none is close."""
    return _closest(str(word), tuple(choices))


@functools.lru_cache(maxsize=1024)
def _closest(word: str, choices: tuple[str, ...]) -> str:
    # A file that repeats one mistake (a misspelt field in every entry) asks the same question many times.
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Link:
    """One resolved use of a producer's interface; ``via`` names the event that an implicit bus need serves."""

    producer: str
    interface: str
    kind: str
    access: str
    deploy: bool
    via: str | None
