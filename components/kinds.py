"""The kinds of bounded context the platform can deploy, and the settings each one accepts.

This module is deliberately free of Pulumi imports: ``ode validate`` checks contracts against these settings
models without paying for the Pulumi SDK, and the components turn the same models into their typed args.

Every value set and limit AWS enforces is a type here (``Literal``, ``Annotated`` constraints, a model validator
for rules that tie two fields together), so pydantic rejects what AWS would reject, naming the field and the allowed
values, and the JSON Schema (``ode schema``) carries the same sets for editors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from .code import outside_repository
from .emits import emits_errors

#: Lambda runtimes AWS supports and has not deprecated (botocore knows older ones that CreateFunction refuses).
Runtime = Literal["python3.11", "python3.12", "python3.13", "python3.14", "nodejs22.x", "nodejs24.x", "java17",
                  "java21", "java25", "dotnet8", "dotnet10", "ruby3.3", "ruby3.4", "provided.al2023"]

#: The retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
RetentionDays = Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                        2922, 3288, 3653]

#: Fargate task CPU units, and the memory (MB) each one accepts.
FargateCpu = Literal[256, 512, 1024, 2048, 4096, 8192, 16384]
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}

#: AWS services a network can reach through VPC endpoints (``ecr.api``, ``ecr.dkr`` and ``logs`` with the ``s3``
#: gateway are what Fargate needs to pull an image from ECR without a NAT gateway).
EndpointService = Literal["s3", "dynamodb", "sqs", "events", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "sts",
                          "states", "lambda", "kms", "ssm", "xray", "sns", "monitoring"]

#: A Lambda handler (``module.function``; Java's ``package.Class::method``), as long as AWS accepts.
Handler = Annotated[str, StringConstraints(pattern=r"^[^\s]+$", max_length=128)]
#: A plain environment variable name; AWS reserves the ``AWS_`` prefix for its own.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


def _no_reserved(value: dict[str, str]) -> dict[str, str]:
    reserved = sorted(k for k in value if k.upper().startswith("AWS_"))
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: names starting with AWS_ are reserved by AWS")
    return value


def _emits_of(kind: str) -> classmethod:  # type: ignore[type-arg]
    """The check of a kind's ``emits`` against the contract it is in (the validation context's ``events``,
    ``routes``, ``consumed``; see ``components.emits``)."""

    def check(cls: type, value: dict[str, list[str]] | None, info: ValidationInfo) -> dict[str, list[str]] | None:
        if value is None or not info.context or info.context.get("events") is None:
            return value
        errors = emits_errors(kind, value, info.context["events"], info.context.get("routes"),
                              info.context.get("consumed"))
        if errors:
            raise ValueError("; ".join(errors))
        return value

    return field_validator("emits")(classmethod(check))  # type: ignore[arg-type]


#: The name of an event the context provides.
EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")]


#: A workflow step: a Step Functions state and the suffix of its function's name.
StepName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=40)]


def _directory(value: str | None, info: ValidationInfo, want: str | None = None) -> str | None:
    """Check that a directory named relative to the contract file exists and lies in the library's repository
    (when the caller says where that file is, through the validation context ``{"contract_dir": Path}``)."""
    if value is None or not info.context or not info.context.get("contract_dir"):
        return value
    problem = outside_repository(value, info.context["contract_dir"])
    if problem:
        raise ValueError(problem)
    if want and not (Path(info.context["contract_dir"]) / value / want).is_file():
        raise ValueError(f"directory {value!r} has no {want}")
    return value


class Settings(BaseModel):
    """Settings common to every kind; a contract's ``settings`` (merged with its ``overrides``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_retention_days: RetentionDays = Field(30, description="Days that CloudWatch keeps the context's logs.")
    alarm_topic_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$",
                                        description="SNS topic that the context's alarms notify.")


class FunctionSettings(Settings):
    """Settings of kinds that run Lambda functions: the team's own code, or the built-in sample handler."""

    code: str | None = Field(None, description="Directory (relative to the contract file) zipped as the functions' "
                                               "code; left out: the built-in sample handler.")
    handler: Handler = Field("index.handler", description="Entry point in the code: module.function.")
    runtime: Runtime = Field("python3.12", description="Lambda runtime (supported and not deprecated).")
    architecture: Literal["x86_64", "arm64"] = Field("x86_64", description="Instruction set of the functions.")
    environment: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="Plain environment variables, merged with those ode injects for "
                                          "consumed interfaces.")
    memory_mb: int = Field(256, ge=128, le=10240, description="Memory of each function, in MB.")
    timeout_s: int = Field(10, ge=1, le=900, description="Timeout of each function, in seconds.")
    reserved_concurrency: int | None = Field(None, ge=0, description="Reserved concurrency of each function.")

    _environment = field_validator("environment")(_no_reserved)

    @field_validator("code")
    @classmethod
    def _code_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _directory(value, info)

    @field_validator("runtime")
    @classmethod
    def _builtin_is_python(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("code") is None and "code" in info.data and not value.startswith("python"):
            raise ValueError(f"runtime {value!r} needs `code`: the built-in handler is Python")
        return value


#: Outbound internet access of a network's private subnets: none, one NAT gateway for the whole VPC (cheaper, one
#: AZ's outage cuts every AZ off), or one per availability zone.
NatSetting = Literal["none", "one", "per-az"]


def subnet_layout(cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """The private and public subnet CIDRs of a network, one of each per AZ.

    The VPC is cut in two halves, private first; each half in blocks of the VPC's prefix + 4, but never smaller than
    a /27, the smallest subnet a load balancer accepts (it needs 8 free addresses in each of its subnets). A subnet's
    block depends only on the CIDR and its AZ's index, so turning public subnets or NAT on, or adding an AZ, never
    moves an existing subnet (moving one replaces it). Raises ``ValueError`` when ``az_count`` blocks do not fit.
    """
    import ipaddress

    net = ipaddress.ip_network(cidr, strict=False)
    block = min(net.prefixlen + 4, 27)
    private, public = (list(half.subnets(new_prefix=block)) for half in net.subnets(prefixlen_diff=1))
    if az_count > len(private):
        raise ValueError(f"a /{net.prefixlen} network fits {len(private)} availability zones with /{block} subnets "
                         f"(a load balancer needs at least /27); allowed az_count: 2..{len(private)}, or a larger "
                         "cidr")
    return [str(b) for b in private[:az_count]], [str(b) for b in public[:az_count]]


class NetworkSettings(Settings):
    cidr: str = Field("10.0.0.0/16", pattern=r"^\d+\.\d+\.\d+\.\d+/(1[6-9]|2[0-4])$", description="VPC CIDR.")
    az_count: int = Field(2, ge=2, le=6, description="Availability zones with one private subnet each.")
    endpoints: list[EndpointService] = Field(
        default_factory=lambda: ["s3", "dynamodb", "sqs", "events", "secretsmanager", "logs", "ecr.api",  # type: ignore[arg-type]
                                 "ecr.dkr"],
        description="AWS services reached through VPC endpoints instead of the internet.",
    )
    public_subnets: bool = Field(False, description="One public subnet per AZ, routed to an internet gateway (where "
                                                    "public load balancers and NAT gateways live).")
    nat: NatSetting = Field("none", description="NAT gateways giving the private subnets outbound internet access: "
                                                "none, one for the VPC, or per-az; anything but none implies "
                                                "public subnets.")

    @field_validator("az_count")
    @classmethod
    def _subnets_fit(cls, value: int, info: ValidationInfo) -> int:
        if "cidr" in info.data:
            subnet_layout(info.data["cidr"], value)
        return value

    @property
    def has_public_subnets(self) -> bool:
        """Whether the network has public subnets (asked for, or needed by its NAT gateways)."""
        return self.public_subnets or self.nat != "none"


class EventBusSettings(Settings):
    archive_retention_days: int = Field(7, ge=0, le=3650, description="Days the bus archive keeps events.")


class ServerlessApiSettings(FunctionSettings):
    throttling_rate_limit: float = Field(100, gt=0, le=10000, description="Steady-state requests per second.")
    throttling_burst_limit: int = Field(200, gt=0, le=5000, description="Burst requests of the API.")
    emits: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]+ /[^\s]*$")], list[EventName]] | None = Field(
        None, description="Which provided events a write through each route publishes ({'POST /orders': "
                          "[OrderPlaced]}); left out: every write route publishes every event the context provides.")

    _emits = _emits_of("serverless-api")


class EventWorkerSettings(FunctionSettings):
    batching_window_s: int = Field(0, ge=0, le=300, description="Seconds Lambda waits to fill a batch.")
    batch_size: int = Field(10, ge=1, le=10000, description="Messages per Lambda invocation (above 10 only with "
                                                            "a batching window; at most 10 from a FIFO queue).")
    max_receive_count: int = Field(5, ge=1, le=1000, description="Receives before a message goes to the DLQ.")
    emits: dict[EventName, list[EventName]] | None = Field(
        None, description="Which provided events the worker publishes once it has handled each consumed event "
                          "({PaymentCaptured: [OrderShipped]}; 'message' for a queue message that is not an event); "
                          "left out: every event and message handled publishes every event the context provides.")

    _emits = _emits_of("event-worker")

    @field_validator("batch_size")
    @classmethod
    def _batch_needs_window(cls, value: int, info: ValidationInfo) -> int:
        if value > 10 and info.context and info.context.get("fifo_queue"):
            raise ValueError(f"{value} is above 10, the most Lambda takes from a FIFO queue: allowed 1..10")
        if value > 10 and not info.data.get("batching_window_s"):
            raise ValueError(f"{value} is above 10: allowed 1..10, or up to 10000 with batching_window_s of at "
                             "least 1")
        return value


class Step(BaseModel):
    """One step of a workflow: its name and the handler in the context's code that runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StepName
    handler: Handler | None = Field(None, description="module.function; default <module of handler>.<name>.")


class WorkflowSettings(FunctionSettings):
    steps: list[StepName | Step] = Field(
        default_factory=lambda: ["validate", "process"],  # type: ignore[arg-type]
        min_length=1,
        description="Lambda task states of the state machine, in order: names, or {name, handler}.",
    )
    emits: dict[Literal["success", "failure"], list[EventName]] | None = Field(
        None, description="Which provided events an execution publishes when it succeeds and when a step fails for "
                          "good ({success: [PaymentCaptured], failure: [PaymentFailed]}); left out: an event named "
                          "...Failed, ...Failure, ...Rejected, ...Declined, ...Cancelled, ...Expired, ...TimedOut or "
                          "...Error on failure, every other on success.")

    _emits = _emits_of("workflow")

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, value: list[str | Step]) -> list[str | Step]:
        names = [s if isinstance(s, str) else s.name for s in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"step names must be unique: {', '.join(dup)} repeated")
        return value

    def step_handlers(self) -> list[tuple[str, str]]:
        """(name, handler) of each step. In the team's code a step without its own handler runs
        ``<module>.<step>`` (the module of ``handler``); the built-in handler serves every step."""
        module = self.handler.rsplit(".", 1)[0]
        out = []
        for s in self.steps:
            name, own = (s, None) if isinstance(s, str) else (s.name, s.handler)
            if self.code is None:
                out.append((name, "index.handler"))
            else:
                out.append((name, own or f"{module}.{name.replace('-', '_')}"))
        return out


class ContainerServiceSettings(Settings):
    image: str | None = Field(None, pattern=r"^[^\s]+$", max_length=255,
                              description="Container image URI; left out (and no `build`): a stock web server "
                                          "listening on 8080.")
    build: str | None = Field(None, description="Directory (relative to the contract file) with a Dockerfile: "
                                                "built and pushed to the context's ECR repository.")
    architecture: Literal["x86_64", "arm64"] = Field("x86_64", description="CPU architecture of the tasks (and of "
                                                                       "the image a `build` makes).")
    cpu: FargateCpu = Field(256, description="Task CPU units.")
    memory_mb: int = Field(512, ge=512, le=122880, description="Task memory, in MB (Fargate pairs it with cpu).")
    desired_count: int = Field(2, ge=0, le=100, description="Tasks the service keeps running.")
    container_port: int = Field(8080, ge=1, le=65535, description="Port the container listens on (below 1024 only "
                                                                  "for an image that may bind it as its user).")
    health_check_path: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=1024)] = Field(
        "/", description="Path the load balancer checks for a 2xx/3xx answer.")
    writable_paths: list[Annotated[str, StringConstraints(pattern=r"^/[^\s]*$")]] = Field(
        default_factory=lambda: ["/tmp"], description="Writable scratch directories (the root is read-only).")
    environment: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="Plain environment variables, merged with those ode injects.")
    public: bool = Field(False, description="Reachable over HTTPS from the internet: CloudFront in front of a load "
                                            "balancer in the network's public subnets that admits only CloudFront. "
                                            "Left out: an internal load balancer, reached through the network.")
    domain: str | None = Field(None, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
                               description="A public service's own domain name (CloudFront alias); with "
                                           "certificate_arn. Left out: CloudFront's own *.cloudfront.net name.")
    certificate_arn: str | None = Field(
        None, validate_default=True, pattern=r"^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$",
        description="ACM certificate of `domain`, in us-east-1 (where CloudFront reads certificates).")

    _environment = field_validator("environment")(_no_reserved)

    @field_validator("certificate_arn")
    @classmethod
    def _domain_with_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None) != (info.data.get("domain") is None):
            raise ValueError("give domain and certificate_arn together (CloudFront serves a domain only with its "
                             "certificate)")
        if value is not None and not info.data.get("public"):
            raise ValueError("domain and certificate_arn are for a public service: set public: true")
        return value

    @field_validator("build")
    @classmethod
    def _build_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("image"):
            raise ValueError("give either image or build, not both")
        return _directory(value, info, want="Dockerfile")

    @field_validator("memory_mb")
    @classmethod
    def _fargate_pair(cls, value: int, info: ValidationInfo) -> int:
        allowed = FARGATE_MEMORY.get(info.data.get("cpu", 0))
        if allowed is not None and value not in allowed:
            raise ValueError(f"{value} does not fit cpu {info.data['cpu']} on Fargate; allowed: "
                             f"{', '.join(map(str, allowed))}")
        return value

    @property
    def default_image(self) -> str:
        """The image when neither ``image`` nor ``build`` is set: nginx as a non-root user on port 8080."""
        return "public.ecr.aws/nginx/nginx-unprivileged:stable"


class DataStoreSettings(Settings):
    versioning: bool = Field(True, description="Keep object versions in the buckets.")
    queue_retention_s: int = Field(345600, ge=60, le=1209600, description="Seconds a queue keeps a message.")


@dataclass(frozen=True)
class ComponentKind:
    """One kind of bounded context: its name, the interface kinds it can provide, its settings model."""

    name: str
    provides: frozenset[str]
    settings: type[Settings]
    description: str


KINDS: dict[str, ComponentKind] = {
    k.name: k
    for k in (
        ComponentKind("network", frozenset({"network"}), NetworkSettings,
                      "VPC, private subnets in 2+ AZs, VPC endpoints, security groups; public subnets and NAT on "
                      "request"),
        ComponentKind("event-bus", frozenset({"event-bus"}), EventBusSettings,
                      "EventBridge bus, archive, bus policy"),
        ComponentKind("serverless-api", frozenset({"http-api", "table", "event", "bucket"}), ServerlessApiSettings,
                      "API Gateway HTTP API, Lambda, DynamoDB"),
        ComponentKind("event-worker", frozenset({"queue", "table", "event"}), EventWorkerSettings,
                      "EventBridge rules -> SQS (+ dead-letter queue) -> Lambda"),
        ComponentKind("workflow", frozenset({"workflow", "event"}), WorkflowSettings,
                      "Step Functions state machine with Lambda tasks"),
        ComponentKind("container-service", frozenset({"http-api", "event"}), ContainerServiceSettings,
                      "ECS Fargate service in private subnets behind a load balancer: internal, or public through "
                      "CloudFront"),
        ComponentKind("data-store", frozenset({"bucket", "table", "secret", "queue"}), DataStoreSettings,
                      "S3 buckets, DynamoDB tables, Secrets Manager secrets, SQS queues"),
    )
}
