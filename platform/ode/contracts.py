"""The contract language: pydantic models of a bounded context and of ``environments.yaml``, and their loading.

A contracts library is a directory with one YAML file per bounded context plus ``environments.yaml``.
:func:`load_library` reads it and raises :class:`ContractErrors` carrying *every* error found, each naming the file,
the line where it is known, and the field.
"""

from __future__ import annotations

import difflib
import errno
import functools
import gc
import os
import re
import stat
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
import yaml_rs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from components.constraints import AccountQuotas, library_errors  # AWS refusals beyond one settings model
from components.kinds import KINDS

from ._versions import Version, VersionRange
from .errors import OdeError
from .policy_spec import RuleSetting, Waiver, check_policies

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
    "network": ("vpc_id", "private_subnet_ids", "security_group_id", "cidr"),
    "secret": ("name", "arn"),
}


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

    def numbered_consumes(self) -> list[tuple[int, Consumes]]:
        """The ``consumes`` entries with their index in the file (exact even when some were dropped)."""
        return list(zip(self._positions or range(len(self.consumes)), self.consumes, strict=False))

    def deployed_in(self, env: str) -> bool:
        """Whether this context is deployed to ``env`` (contexts without `environments` are everywhere)."""
        return self.environments is None or env in self.environments

    def settings_for(self, env: str) -> dict[str, Any]:
        """`settings` with the environment's `overrides` merged over them (nested mappings merged too)."""
        return _merge(self.settings, self.overrides.get(env, {}))


def settings_context(ctx: Context, path: Path | None) -> dict[str, Any]:
    """What a component's settings are checked against beside themselves: the contract's directory (code
    directories must exist) and whether the context provides a FIFO queue (Lambda takes at most 10 from one)."""
    return {"contract_dir": path.parent if path else None,
            "fifo_queue": any(getattr(i, "fifo", False) for i in ctx.provides.values())}


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


# ---------------------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, order=True)
class ContractError:
    """One mistake in a contracts library: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class ContractErrors(OdeError, ValueError):
    """Every error found in a contracts library, in file order."""

    def __init__(self, errors: Iterable[ContractError]):
        self.errors = sorted(set(errors), key=lambda e: (e.file, e.line or 0, e.field, e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


# ---------------------------------------------------------------------------------------------------------------
# YAML reading. Values come from one parser only, yaml_rs (YAML 1.2: ``yes``/``on`` stay strings, ``0o17`` is 15,
# a duplicate key is an error). PyYAML never reads a value: its composer is used, once per file that has errors,
# only to find the line where a key or an item stands.

_CLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Largest contract file read (bytes): a contract is a page or two; a huge file is a mistake, not a contract.
MAX_FILE_BYTES = 8 * 1024 * 1024


def _read_text(path: Path, label: str) -> tuple[str | None, list[ContractError]]:
    """The text of a regular file, without a UTF-8 byte-order mark; an error for anything else."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells what was opened.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None, [ContractError(label, None, "", "is not a regular file")]
            if info.st_size > MAX_FILE_BYTES:
                return None, [ContractError(label, None, "", f"is {info.st_size} bytes, larger than a contract "
                                                             f"may be ({MAX_FILE_BYTES} bytes)")]
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            raw = b"".join(chunks)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            return None, [ContractError(label, None, "", "is not a regular file")]
        return None, [ContractError(label, None, "", f"cannot be read: {exc.strerror or exc}")]
    try:
        # utf-8-sig drops a byte-order mark that some editors write; it would otherwise glue onto the first key.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [ContractError(label, line, "", f"is not UTF-8 text (byte {exc.start})")]
    nul = text.find("\x00")
    if nul >= 0:
        # A NUL would end the text early for the parser: the rest of the file would be silently ignored.
        return None, [ContractError(label, text.count("\n", 0, nul) + 1, "", "contains a NUL character")]
    return text, []


_YAML_LINE = re.compile(r"at line (\d+)")


def _read_yaml(path: Path, label: str) -> tuple[Any, list[ContractError]]:
    """Parse one file with yaml_rs; a file it rejects is one error with the line it names."""
    text, errors = _read_text(path, label)
    if text is None:
        return None, errors
    try:
        return yaml_rs.loads(text), []
    except yaml_rs.YAMLDecodeError as exc:
        message = str(exc)
        dup = re.match(r"duplicate mapping key: (.*)$", message.splitlines()[0] if message else "")
        if dup:
            key = dup.group(1).strip("'\"")
            return None, [ContractError(label, _duplicate_line(text, key), key, "is written twice in the same mapping")]
        match = _YAML_LINE.search(message)
        reason = message.strip().splitlines()[-1].strip() if message.strip() else "cannot be parsed"
        return None, [ContractError(label, int(match.group(1)) if match else None, "", f"YAML syntax: {reason}")]
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, it is this file's error, not a crash
        return None, [ContractError(label, None, "", f"YAML cannot be parsed: {type(exc).__name__}")]


def _duplicate_line(text: str, key: str) -> int | None:
    """The line of the second occurrence of ``key`` in one mapping (found by position, values not read)."""
    try:
        root = yaml.compose(text, Loader=_CLoader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value == key and key in seen:
                        return int(key_node.start_mark.line) + 1
                    seen.add(key_node.value)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


class _Positions:
    """Where each key and item of one YAML file stands: built in one pass, then each lookup is a dict hit, so
    the cost of naming lines grows with the file, not with the file times its errors."""

    def __init__(self, text: str | None):
        self.lines: dict[tuple[str, ...], int] = {}
        if text is None:
            return
        try:
            root = yaml.compose(text, Loader=_CLoader)
        except (yaml.YAMLError, RecursionError, ValueError):
            return
        if root is None:
            return
        self.lines[()] = root.start_mark.line + 1
        stack: list[tuple[tuple[str, ...], yaml.Node]] = [((), root)]
        while stack:
            prefix, node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue
                    here = (*prefix, key_node.value)
                    self.lines.setdefault(here, key_node.start_mark.line + 1)
                    stack.append((here, value_node))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    here = (*prefix, str(i))
                    self.lines.setdefault(here, item.start_mark.line + 1)
                    stack.append((here, item))

    def line(self, loc: tuple[Any, ...]) -> int | None:
        """The line of the field at ``loc``, or of its nearest parent that the file has."""
        parts = tuple(str(p) for p in loc)
        for end in range(len(parts), -1, -1):
            found = self.lines.get(parts[:end])
            if found is not None:
                return found
        return None


@functools.lru_cache(maxsize=256)
def _positions_of(path: str, mtime_ns: int, size: int) -> _Positions:
    text, _ = _read_text(Path(path), path)
    return _Positions(text)


def _line_of(path: Path, loc: tuple[Any, ...]) -> int | None:
    """The line of the field at ``loc`` (or of its nearest existing parent) in a YAML file."""
    try:
        info = path.stat()
    except OSError:
        return None
    return _positions_of(str(path), info.st_mtime_ns, info.st_size).line(loc)


def _field_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the discriminator tags (interface kinds) and internal keys pydantic adds to error locations."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "provides" and parts[2] in ACCESS:
        del parts[2]
    return tuple(p for p in parts if p != "[key]")


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``word``, or nothing when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_of(annotation: Any, value: Any) -> tuple[Any, Any]:
    """The model class inside an annotation (Optional, Annotated and discriminated unions of models undone)."""
    for _ in range(4):
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            tagged = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)
                      and "kind" in m.model_fields and isinstance(value, dict)
                      and value.get("kind") in typing.get_args(m.model_fields["kind"].annotation)]
            annotation = tagged[0] if tagged else members[0] if len(members) == 1 else None
        else:
            break
    return annotation, value


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str] | None:
    """The field names, as written in files, of the model that holds the last part of ``loc``."""
    current: Any = model
    value = data
    parts = list(loc[:-1])
    while parts:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        name = parts.pop(0)
        found = next((f for n, f in current.model_fields.items() if (f.alias or n) == name), None)
        if found is None:
            return None
        value = value.get(name) if isinstance(value, dict) else None
        current, value = _model_of(found.annotation, value)
        origin = typing.get_origin(current)
        if origin in (list, dict) and parts:
            key = parts.pop(0)
            if isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            elif isinstance(value, dict):
                value = value.get(key)
            else:
                value = None
            current, value = _model_of(typing.get_args(current)[-1], value)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return None


def _validation_errors(exc: ValidationError, path: Path, label: str, model: type[BaseModel] | None = None,
                       data: Any = None) -> list[ContractError]:
    """One :class:`ContractError` per pydantic error, in the words of the contract language."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        # A model validator names its own field inside the message ("consumes[2]: ..."): lift it out.
        match = re.match(r"^([A-Za-z0-9_.\[\]-]+): (.*)$", message, re.S)
        if match and err["type"] == "value_error":
            named = _loc_from_path(match.group(1))
            here = _fields_at(model, (*loc, ""), data) if model is not None and loc else None
            if not loc or (here and named and named[0] in here):
                loc, message = (*loc, *named), match.group(2)
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc, data) if model is not None and loc else None
            if allowed:
                message = (f"is not a field of the contract language{did_you_mean(loc[-1], allowed)}; "
                           f"allowed here: {', '.join(allowed)}")
            else:
                message = "is not a field of the contract language (a typo?)"
        elif err["type"] == "missing":
            message = "is required"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "context":
            message = f"{err['input']!r} is not a context name: lowercase letters, digits and '-', " \
                "starting with a letter, at most 32 characters"
        elif err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag", "")
            message = f"{tag!r} is not an interface kind{did_you_mean(tag, ACCESS)}: kind must be one of " \
                f"{', '.join(ACCESS)}"
            loc = (*loc, "kind")
        elif err["type"] == "union_tag_not_found":
            message = f"kind is required: one of {', '.join(ACCESS)}"
            loc = (*loc, "kind")
        errors.append(ContractError(label, _line_of(path, loc), _field_path(loc), message))
    return errors


def _loc_from_path(text: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


# ---------------------------------------------------------------------------------------------------------------
# The library


@dataclass
class ContractLibrary:
    """A loaded, individually valid contracts library. Use :meth:`check` (or :func:`load_library`) for the
    cross-file rules; :class:`ode.graph.EnvGraph` builds one environment's graph from it."""

    root: Path
    environments: EnvironmentsFile
    contexts: dict[str, Context]
    files: dict[str, Path] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    _links: dict[str, tuple[Link, ...]] = field(default_factory=dict, repr=False, compare=False)
    _labels: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def project(self) -> str:
        return self.environments.project

    def label(self, context: str) -> str:
        """The file a context came from, as written in messages."""
        if context not in self._labels:
            path = self.files.get(context)
            self._labels[context] = _label(self.root, path) if path else f"<{context}>"
        return self._labels[context]

    def environment(self, env: str) -> Environment:
        """The named long-lived environment; ``KeyError`` with the known names otherwise."""
        try:
            return self.environments.environments[env]
        except KeyError:
            known = ", ".join(self.environments.environments)
            raise UnknownEnvironmentError(f"unknown environment {env!r} (environments.yaml has: {known})") from None

    def interface(self, context: str, name: str) -> _InterfaceBase | None:
        ctx = self.contexts.get(context)
        return ctx.provides.get(name) if ctx else None  # type: ignore[return-value]

    def bus_of(self, context: str) -> tuple[str, str] | None:
        """The event bus ``context`` publishes on, as (context, interface): one it provides, else one it
        consumes with ``publish``."""
        ctx = self.contexts[context]
        for name, iface in ctx.provides.items():
            if iface.kind == "event-bus":
                return context, name
        for entry in ctx.consumes:
            producer = self.contexts.get(entry.context)
            used = producer.provides.get(entry.interface) if producer else None
            if used is not None and used.kind == "event-bus" and entry.access_for(used.kind) == "publish":
                return entry.context, entry.interface
        return None

    def links(self, context: str) -> tuple[Link, ...]:
        """What ``context`` consumes, resolved: each existing interface it names, and for each event it
        subscribes to, the bus that event travels on (a deploy need: the rule lives on that bus)."""
        found = self._links.get(context)
        if found is None:
            found = self._links[context] = tuple(self._resolve_links(context))
        return found

    def _resolve_links(self, context: str) -> Iterator[Link]:
        buses: dict[tuple[str, str], str] = {}
        explicit: set[tuple[str, str]] = set()
        for entry in self.contexts[context].consumes:
            producer = self.contexts.get(entry.context)
            iface = producer.provides.get(entry.interface) if producer else None
            if iface is None:
                continue
            explicit.add((entry.context, entry.interface))
            yield Link(entry.context, entry.interface, iface.kind, entry.access_for(iface.kind),
                       is_deploy_kind(iface.kind), None)
            if iface.kind == "event":
                bus = self.bus_of(entry.context)
                if bus is not None and bus[0] != context:
                    buses.setdefault(bus, entry.interface)
        for (bus_context, bus_interface), event in buses.items():
            if (bus_context, bus_interface) not in explicit:
                yield Link(bus_context, bus_interface, "event-bus", "subscribe", True, event)

    def check(self, env: str | None = None) -> list[ContractError]:
        """Every cross-file error: consumed interfaces that do not exist, accesses, versions, environments,
        events that cannot be published, deploy cycles. Limited to ``env`` where given."""
        from .graph import deploy_cycles  # the graph module owns cycle finding

        errors: list[ContractError] = []
        envs = self.environments.environments
        env_names = [env] if env else list(envs)
        for name, ctx in self.contexts.items():
            label = self.label(name)
            path = self.files.get(name)

            def err(loc: tuple[str | int, ...], message: str, label: str = label, path: Path | None = path) -> None:
                line = _line_of(path, loc) if path else None
                errors.append(ContractError(label, line, _field_path(loc), message))

            for env_name in ctx.overrides:
                if env_name not in envs:
                    err(("overrides", env_name), f"environment {env_name!r} is not in environments.yaml"
                        f"{did_you_mean(env_name, envs)}; it has {', '.join(envs)}")
            for i, env_name in enumerate(ctx.environments or []):
                if env_name not in envs:
                    err(("environments", i), f"environment {env_name!r} is not in environments.yaml"
                        f"{did_you_mean(env_name, envs)}; it has {', '.join(envs)}")
            kind = KINDS[ctx.component]
            for env_name in env_names if ctx.environments is None else ctx.environments:
                if env_name not in envs or (env and env_name != env):
                    continue
                try:
                    kind.settings.model_validate(ctx.settings_for(env_name), context=settings_context(ctx, path))
                except ValidationError as exc:
                    overridden = ctx.overrides.get(env_name, {})
                    for e in exc.errors(include_url=False):
                        key = e["loc"][0] if e["loc"] else None
                        in_override = key in overridden
                        loc = ("overrides", env_name, *e["loc"]) if in_override else ("settings", *e["loc"])
                        if e["type"] == "extra_forbidden":
                            names = list(kind.settings.model_fields)
                            msg = (f"is not a setting of component {ctx.component!r}"
                                   f"{did_you_mean(loc[-1], names) if len(loc) == 2 + in_override else ''}; "
                                   f"its settings: {', '.join(names)}")
                        else:
                            msg = e["msg"].removeprefix("Value error, ")
                        err(loc, msg)
            for iface_name, iface in ctx.provides.items():
                if iface.kind not in kind.provides:
                    able = sorted(k for k, c in KINDS.items() if iface.kind in c.provides)
                    err(("provides", iface_name, "kind"),
                        f"{ctx.component} cannot provide a {iface.kind!r} interface "
                        f"(it provides {', '.join(sorted(kind.provides))}; "
                        f"{iface.kind} is provided by {', '.join(able) or 'no component'})")
            seen: set[tuple[str, str]] = set()
            for i, entry in ctx.numbered_consumes():
                if entry.context == name:
                    err(("consumes", i, "context"), f"context {name!r} consumes itself")
                elif (entry.context, entry.interface) in seen:
                    err(("consumes", i), f"{entry.context}/{entry.interface} is consumed twice")
                seen.add((entry.context, entry.interface))
            publishes = any(i.kind == "event-bus" for i in ctx.provides.values())
            for i, entry in ctx.numbered_consumes():
                if entry.context == name:
                    continue
                producer = self.contexts.get(entry.context)
                if producer is None:
                    if entry.context in self.broken:
                        continue  # its own file's errors are reported already
                    err(("consumes", i, "context"), f"context {entry.context!r} does not exist"
                        f"{did_you_mean(entry.context, self.contexts)}")
                    continue
                target = producer.provides.get(entry.interface)
                if target is None:
                    if entry.interface in producer._dropped:
                        continue  # declared with errors of its own, reported in the producer's file
                    offered = ", ".join(producer.provides) or "nothing"
                    err(("consumes", i, "interface"),
                        f"{entry.context} provides no interface {entry.interface!r}"
                        f"{did_you_mean(entry.interface, producer.provides)} (it provides {offered})")
                    continue
                allowed = ACCESS[target.kind]
                if entry.access is not None and entry.access not in allowed:
                    err(("consumes", i, "access"),
                        f"{entry.access!r} is not an access of {target.kind} {entry.context}/{entry.interface}"
                        f"{did_you_mean(entry.access, allowed)} (allowed: {', '.join(allowed)})")
                if target.kind == "event-bus" and entry.access_for(target.kind) == "publish":
                    publishes = True
                if entry.version is not None and not VersionRange.parse(entry.version).allows(target.version):
                    err(("consumes", i, "version"),
                        f"{entry.context}/{entry.interface} is at {target.version}, outside {entry.version!r}")
                if is_deploy_kind(target.kind):
                    for env_name in env_names:
                        if env_name in envs and ctx.deployed_in(env_name) and not producer.deployed_in(env_name):
                            err(("consumes", i, "context"),
                                f"{name} is deployed in {env_name} but its producer {entry.context} is not")
            events = [n for n, i in ctx.provides.items() if i.kind == "event"]
            if not publishes and events:
                err(("provides",), f"provides events ({', '.join(events)}) but cannot publish them: consume an "
                    "event-bus with access 'publish', or provide one")
        policy = self.environments.ephemeral
        if policy:
            for i, reused in enumerate(policy.reuse):
                if reused not in self.contexts and reused not in self.broken:
                    errors.append(ContractError(ENVIRONMENTS_FILE, _line_of(self.root / ENVIRONMENTS_FILE, (
                        "ephemeral", "reuse", i)), f"ephemeral.reuse[{i}]",
                        f"context {reused!r} does not exist{did_you_mean(reused, self.contexts)}"))
        # AWS's refusals that one settings model cannot show: files (a Dockerfile's EXPOSE), other contexts (the
        # network an attached context needs), names made from the project, account quotas.
        for owner, loc, message in library_errors(self, env_names):
            where = self.files.get(owner) if owner is not None else self.root / ENVIRONMENTS_FILE
            errors.append(ContractError(self.label(owner) if owner is not None else ENVIRONMENTS_FILE,
                                        _line_of(where, loc) if where else None, _field_path(loc), message))
        for cycle in deploy_cycles(self):
            consumer, needed = cycle[0], cycle[1]
            index = next(i for i, c in self.contexts[consumer].numbered_consumes() if c.context == needed)
            cycle_loc: tuple[str | int, ...] = ("consumes", index, "context")
            path = self.files.get(consumer)
            errors.append(ContractError(
                self.label(consumer), _line_of(path, cycle_loc) if path else None, _field_path(cycle_loc),
                "cycle of deploy edges: " + " -> ".join(cycle)))
        return errors


@dataclass(frozen=True)
class Link:
    """One resolved use of a producer's interface; ``via`` names the event that an implicit bus need serves."""

    producer: str
    interface: str
    kind: str
    access: str
    deploy: bool
    via: str | None


class UnknownEnvironmentError(OdeError, KeyError):
    """An environment name that environments.yaml does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


def _label(root: Path, path: Path, cwd: Path | None = None) -> str:
    """How a file is named in messages: relative to the working directory where it lies below it."""
    try:
        return str(path.relative_to(cwd or Path.cwd()))
    except ValueError:
        return str(path)


def _context_files(root: Path) -> Iterator[Path]:
    """The contract files of a library: ``*.yaml``/``*.yml`` except environments.yaml and dot-files (editors'
    and tools' own), and only regular files: reading a FIFO or a device would block or never end."""
    with os.scandir(root) as entries:
        names = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith((".yaml", ".yml")):
                continue
            if name in (ENVIRONMENTS_FILE, "environments.yml"):
                continue
            try:
                if entry.is_file():  # follows symlinks; no extra system call where the directory says the type
                    names.append(name)
            except OSError:
                continue
    for name in sorted(names):
        yield root / name


_CONTEXT_LINE = re.compile(r"^context:[ \t]*[\"']?([a-z][a-z0-9-]{0,31})[\"']?[ \t]*(?:#.*)?$", re.M)


def _claimed_name(path: Path, text: str | None) -> str:
    """The context a file that cannot be read means to define: its ``context:`` line, else its file name.
    Consumers of that context are then not told it "does not exist": the file's own error says why."""
    match = _CONTEXT_LINE.search(text or "")
    return match.group(1) if match else path.stem


def read_library(root: str | Path) -> tuple[ContractLibrary | None, list[ContractError]]:
    """Read and validate each file of a library on its own; return the library (None when environments.yaml
    is unusable) and the errors of the files, without the cross-file checks."""
    root = Path(root)
    # Line lookups are cached per file for one reading of the library; a new reading starts afresh, so that a file
    # rewritten within the clock's resolution is never named with its old lines.
    _positions_of.cache_clear()
    if not root.is_dir():
        return None, [ContractError(str(root), None, "", "is not a directory of contracts")]
    errors: list[ContractError] = []
    env_path = root / ENVIRONMENTS_FILE
    env_file: EnvironmentsFile | None = None
    env_label = _label(root, env_path)
    if not env_path.exists():
        errors.append(ContractError(env_label, None, "", "is missing: a library needs its environments"))
    else:
        data, errs = _read_yaml(env_path, env_label)
        errors.extend(errs)
        if not errs:
            try:
                env_file = EnvironmentsFile.model_validate(data if data is not None else {})
            except ValidationError as exc:
                errors.extend(_validation_errors(exc, env_path, env_label, EnvironmentsFile, data))
                env_file = _salvage_environments(data, exc)
    contexts: dict[str, Context] = {}
    files: dict[str, Path] = {}
    broken: set[str] = set()
    labels: dict[str, str] = {}
    # Every file lies in root: name them from root's label instead of relating each path to the cwd again.
    root_label = _label(root, root, Path.cwd())
    for path in _context_files(root):
        label = path.name if root_label == "." else os.path.join(root_label, path.name)
        data, errs = _read_yaml(path, label)
        if errs:
            errors.extend(errs)
            text, _ = _read_text(path, label)
            broken.add(_claimed_name(path, text))
            continue
        if not isinstance(data, dict):
            errors.append(ContractError(label, 1, "", "a contract is a mapping with context, owner, version, ..."))
            broken.add(path.stem)
            continue
        try:
            ctx = Context.model_validate(data)
        except ValidationError as exc:
            errors.extend(_validation_errors(exc, path, label, Context, data))
            partial = _salvage(data, exc)
            if partial is None:
                name = data.get("context")
                broken.add(name if isinstance(name, str) else path.stem)
                continue
            ctx = partial
        if ctx.context in contexts:
            errors.append(ContractError(
                label, _line_of(path, ("context",)), "context",
                f"context {ctx.context!r} is already defined in {_label(root, files[ctx.context])}"))
            continue
        contexts[ctx.context] = ctx
        files[ctx.context] = path
        labels[ctx.context] = label
    if env_file is None:
        return None, errors
    return ContractLibrary(root, env_file, contexts, files, broken, _labels=labels), errors


_PLACEHOLDERS = {"owner": "?", "version": "0.0.0"}
#: Stand-ins for the fields of an environment whose own errors are reported already.
_ENV_PLACEHOLDERS = {"project": "project", "account": "000000000000", "region": "us-east-1", "protected": False,
                     "role_arn": None}


def _salvage_environments(data: Any, exc: ValidationError) -> EnvironmentsFile | None:
    """What environments.yaml still says when it has errors: the ephemeral policy dropped, bad fields replaced by
    stand-ins, unknown fields dropped, so that the contracts are still checked against its environments (and a
    typo in one account does not turn into "environment 'dev' is not in environments.yaml" everywhere)."""
    if not isinstance(data, dict):
        return None
    fixed: dict[str, Any] = {**data, "ephemeral": None}
    envs = fixed.get("environments")
    if isinstance(envs, dict):
        envs = fixed["environments"] = {k: dict(v) if isinstance(v, dict) else {} for k, v in envs.items()}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if loc and loc[0] == "project":
            fixed["project"] = _ENV_PLACEHOLDERS["project"]
        elif len(loc) == 1 and err["type"] == "extra_forbidden":
            fixed.pop(loc[0], None)  # type: ignore[arg-type]
        elif len(loc) == 3 and loc[0] == "environments" and isinstance(envs, dict) and loc[1] in envs:
            entry = envs[loc[1]]  # type: ignore[index]
            if err["type"] == "extra_forbidden":
                entry.pop(loc[2], None)
            elif loc[2] in _ENV_PLACEHOLDERS:
                entry[str(loc[2])] = _ENV_PLACEHOLDERS[str(loc[2])]
        elif len(loc) == 2 and loc[0] == "environments" and isinstance(envs, dict):
            envs.pop(loc[1], None)  # type: ignore[call-overload]
    try:
        return EnvironmentsFile.model_validate(fixed)
    except ValidationError:
        return None


def _salvage(data: dict[str, Any], exc: ValidationError) -> Context | None:
    """The valid rest of a contract whose validation failed: unknown fields, bad interfaces and bad consumes
    entries dropped, so that the cross-file checks can still report what else is wrong in one run."""
    data = dict(data)
    provides = dict(data["provides"]) if isinstance(data.get("provides"), dict) else None
    consumes = list(data["consumes"]) if isinstance(data.get("consumes"), list) else None
    bad_consumes: set[int] = set()
    dropped: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if not loc:
            return None
        if loc[0] == "provides" and len(loc) > 1 and provides is not None:
            provides.pop(loc[1], None)  # type: ignore[call-overload]
            dropped.add(str(loc[1]))
        elif loc[0] == "consumes" and len(loc) > 1 and isinstance(loc[1], int):
            bad_consumes.add(loc[1])
        elif err["type"] == "extra_forbidden" or loc[0] in ("settings", "overrides", "description", "environments"):
            data.pop(loc[0], None)  # type: ignore[arg-type]
        elif loc[0] in _PLACEHOLDERS and len(loc) == 1:
            # Reported already; a stand-in lets the other files' checks still see this context.
            data[str(loc[0])] = _PLACEHOLDERS[str(loc[0])]
        else:
            return None
    if provides is not None:
        data["provides"] = provides
    kept = [i for i in range(len(consumes or [])) if i not in bad_consumes]
    if consumes is not None:
        data["consumes"] = [consumes[i] for i in kept]
    try:
        ctx = Context.model_validate(data)
    except ValidationError:
        return None
    ctx._positions = kept
    ctx._dropped = frozenset(dropped)
    return ctx


def load_library(root: str | Path, env: str | None = None) -> ContractLibrary:
    """Load a contracts library and check it whole (for ``env`` only, where given).

    Raises :class:`ContractErrors` with every error found, or :class:`UnknownEnvironmentError`.
    """
    # Loading makes many small objects and none of them is garbage: the cyclic collector would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        library, errors = read_library(root)
        if library is not None:
            if env is not None:
                library.environment(env)
            errors.extend(library.check(env))
    finally:
        if collecting:
            gc.enable()
    if errors:
        raise ContractErrors(errors)
    assert library is not None
    return library


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
