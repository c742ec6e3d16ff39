"""Physical names of AWS resources, within AWS's limits. Free of Pulumi imports: the simulated engine names what the
program would create with the same functions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: Longest physical name AWS accepts, per kind of name.
LIMITS: dict[str, int] = {
    "s3": 63,
    "lambda": 64,
    "iam-role": 64,
    "iam-policy": 128,
    "sqs": 80,
    "dynamodb": 255,
    "event-bus": 256,
    "event-rule": 64,
    "log-group": 512,
    "state-machine": 80,
    "secret": 512,
    "ecs-cluster": 255,
    "ecs-service": 255,
    "alb": 32,
    "target-group": 32,
    "security-group": 255,
    "alarm": 255,
    "api": 128,
    "kms-alias": 256,
    "sns": 256,
    "dashboard": 255,
}

_HASH_LEN = 6


def physical_name(parts: Iterable[str], limit: str | int, *, separator: str = "-") -> str:
    """A physical name made of ``parts`` that fits ``limit`` (a key of :data:`LIMITS` or a length).

    Names that fit are kept as they are. A longer one is cut and ends with a hash of the whole name, so two
    different long names stay different and the same inputs always give the same name.
    """
    size = LIMITS[limit] if isinstance(limit, str) else limit
    full = separator.join(p for p in parts if p)
    if len(full) <= size:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LEN]
    return full[: size - _HASH_LEN - 1].rstrip(separator + "_.") + separator + digest


def bucket_name(project: str, env: str, context: str, role: str, account: str) -> str:
    """An S3 bucket name: bucket names share one global namespace, so the account is part of it; lowercase."""
    return physical_name((project, env, context, role, account), "s3").lower()
