"""The kinds of bounded context the platform can deploy, and the settings each one accepts.

This module is deliberately free of Pulumi imports: ``ode validate`` checks contracts against these settings
models without paying for the Pulumi SDK, and the components turn the same models into their typed args.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Settings common to every kind; a contract's ``settings`` (merged with its ``overrides``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_retention_days: int = Field(
        30,
        description="Days that CloudWatch keeps the context's logs.",
        json_schema_extra={"enum": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]},
    )
    alarm_topic_arn: str | None = Field(None, description="SNS topic that the context's alarms notify.")


class FunctionSettings(Settings):
    """Settings of kinds that run Lambda functions."""

    memory_mb: int = Field(256, ge=128, le=10240, description="Memory of each function, in MB.")
    timeout_s: int = Field(10, ge=1, le=900, description="Timeout of each function, in seconds.")
    runtime: str = Field("python3.12", pattern=r"^python3\.\d+$", description="Lambda runtime.")
    reserved_concurrency: int | None = Field(None, ge=0, description="Reserved concurrency of each function.")


class NetworkSettings(Settings):
    cidr: str = Field("10.0.0.0/16", pattern=r"^\d+\.\d+\.\d+\.\d+/(1[6-9]|2[0-4])$", description="VPC CIDR.")
    az_count: int = Field(2, ge=2, le=6, description="Availability zones with one private subnet each.")
    endpoints: list[str] = Field(
        default_factory=lambda: ["s3", "dynamodb", "sqs", "events", "secretsmanager", "logs"],
        description="AWS services reached through VPC endpoints instead of the internet.",
    )


class EventBusSettings(Settings):
    archive_retention_days: int = Field(7, ge=0, le=3650, description="Days the bus archive keeps events.")


class ServerlessApiSettings(FunctionSettings):
    throttling_rate_limit: float = Field(100, gt=0, description="Steady-state requests per second of the API.")
    throttling_burst_limit: int = Field(200, gt=0, description="Burst requests of the API.")


class EventWorkerSettings(FunctionSettings):
    batch_size: int = Field(10, ge=1, le=10000, description="Messages per Lambda invocation.")
    max_receive_count: int = Field(5, ge=1, le=1000, description="Receives before a message goes to the DLQ.")


class WorkflowSettings(FunctionSettings):
    steps: list[str] = Field(
        default_factory=lambda: ["validate", "process"],
        min_length=1,
        description="Lambda task states of the state machine, in order.",
    )


class ContainerServiceSettings(Settings):
    image: str = Field("public.ecr.aws/nginx/nginx:stable", description="Container image.")
    cpu: int = Field(256, description="Task CPU units.", json_schema_extra={"enum": [256, 512, 1024, 2048, 4096]})
    memory_mb: int = Field(512, ge=512, le=30720, description="Task memory, in MB.")
    desired_count: int = Field(2, ge=0, le=100, description="Tasks the service keeps running.")
    container_port: int = Field(8080, ge=1, le=65535, description="Port the container listens on.")


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
                      "VPC, private subnets in 2+ AZs, VPC endpoints, security groups"),
        ComponentKind("event-bus", frozenset({"event-bus"}), EventBusSettings,
                      "EventBridge bus, archive, bus policy"),
        ComponentKind("serverless-api", frozenset({"http-api", "table", "event", "bucket"}), ServerlessApiSettings,
                      "API Gateway HTTP API, Lambda, DynamoDB"),
        ComponentKind("event-worker", frozenset({"queue", "table", "event"}), EventWorkerSettings,
                      "EventBridge rules -> SQS (+ dead-letter queue) -> Lambda"),
        ComponentKind("workflow", frozenset({"workflow", "event"}), WorkflowSettings,
                      "Step Functions state machine with Lambda tasks"),
        ComponentKind("container-service", frozenset({"http-api", "event"}), ContainerServiceSettings,
                      "ECS Fargate service in private subnets behind a load balancer"),
        ComponentKind("data-store", frozenset({"bucket", "table", "secret", "queue"}), DataStoreSettings,
                      "S3 buckets, DynamoDB tables, Secrets Manager secrets, SQS queues"),
    )
}
