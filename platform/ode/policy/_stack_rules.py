"""Stack rules: a stack's whole resource graph (with its bounds) in, (resource, message) out; and the
evaluation of every resource and stack rule over one stack."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from ..contracts import ContractLibrary
from ..contracts.policies import Level
from ._model import (
    Bounds,
    Consumed,
    Finding,
    Res,
    StackRule,
    _allows,
    _json,
    _last,
    _list,
    identity_statements,
    role_statements,
    statements,
)
from ._resource_rules import RESOURCE_RULES


def _role_of(fn: Res) -> str:
    return _last(fn.props.get("role") or fn.props.get("roleArn"))


def tracing_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                        bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords in the role."""
    roles = role_statements(resources)
    for r in resources:
        traced = (r.type == "aws:lambda/function:Function" and (r.props.get("tracingConfig") or {}).get("mode")
                  == "Active") or (r.type == "aws:sfn/stateMachine:StateMachine"
                                   and (r.props.get("tracingConfiguration") or {}).get("enabled"))
        if not traced:
            continue
        role = _last(r.props.get("role") or r.props.get("roleArn"))
        if not role or role not in roles:
            continue  # a role from outside the stack: nothing to judge it by
        missing = [a for a in ("xray:PutTraceSegments", "xray:PutTelemetryRecords") if not _allows(roles[role], a)]
        if missing:
            yield r, f"{r.short_type} {r.name} has active tracing but its role {role} lacks {', '.join(missing)}"


def vpc_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                    bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """A function in a VPC may create, describe and delete its network interfaces."""
    roles = role_statements(resources)
    for r in resources:
        if r.type != "aws:lambda/function:Function" or not (r.props.get("vpcConfig") or {}).get("subnetIds"):
            continue
        role = _role_of(r)
        if role not in roles:
            continue
        needed = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface")
        missing = [a for a in needed if not _allows(roles[role], a)]
        if missing:
            yield r, f"function {r.name} runs in a VPC but its role {role} lacks {', '.join(missing)}"


_SOURCE_ACTIONS = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "dynamodb": ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                 "dynamodb:ListStreams"),
    "kinesis": ("kinesis:DescribeStream", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"),
}


def event_source_permissions(resources: Sequence[Res], config: Mapping[str, Any],
                             bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """A function may read, delete and inspect what its event source mappings feed it."""
    roles = role_statements(resources)
    functions = {str(r.props.get("name") or r.name): r for r in resources if r.type == "aws:lambda/function:Function"}
    for m in resources:
        if m.type != "aws:lambda/eventSourceMapping:EventSourceMapping":
            continue
        source = str(m.props.get("eventSourceArn") or "")
        service = source.split(":")[2] if source.count(":") >= 2 else ""
        fn = functions.get(_last(m.props.get("functionName")))
        if service not in _SOURCE_ACTIONS or fn is None or _role_of(fn) not in roles:
            continue
        stmts = roles[_role_of(fn)]
        missing = [a for a in _SOURCE_ACTIONS[service] if not _allows(stmts, a, source)
                   and not (service == "dynamodb" and a == "dynamodb:ListStreams" and _allows(stmts, a))]
        if missing:
            yield m, f"{m.name}: function {fn.name} reads {source} but its role lacks {', '.join(missing)} on it"


def ecs_service_after_listener(resources: Sequence[Res], config: Mapping[str, Any],
                               bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """An ECS service behind a load balancer depends on the listener forwarding to its target group."""
    listeners: dict[str, list[Res]] = {}
    for r in resources:
        if r.type == "aws:lb/listener:Listener":
            for action in _list(r.props.get("defaultActions")):
                arns = [(action or {}).get("targetGroupArn")]
                arns += [t.get("arn") for t in _list(((action or {}).get("forward") or {}).get("targetGroups"))]
                for arn in filter(None, arns):
                    listeners.setdefault(str(arn), []).append(r)
    for svc in resources:
        if svc.type != "aws:ecs/service:Service" or svc.dependencies is None:
            continue  # without recorded dependencies the order cannot be judged
        deps = set(svc.dependencies)
        frontier = list(deps)
        while frontier:  # a dependency on a component waits for its children too
            name = frontier.pop()
            for child in resources:
                if child.parent == name and child.name not in deps:
                    deps.add(child.name)
                    frontier.append(child.name)
        for lb in _list(svc.props.get("loadBalancers")):
            tg = str((lb or {}).get("targetGroupArn") or "")
            fronts = listeners.get(tg, [])
            if tg and not any(listener.name in deps for listener in fronts):
                names = ", ".join(listener.name for listener in fronts) or "no listener in this stack"
                yield svc, f"service {svc.name} does not depend on the listener of its target group ({names}): " \
                           "AWS refuses it when it is created first"


_DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
_HTTPS_VIEWERS = ("redirect-to-https", "https-only")


def _viewer_problem(dist: Res) -> str | None:
    """What lets a distribution's viewers use plain HTTP or an old TLS version, or None."""
    behaviours = [dist.props.get("defaultCacheBehavior"), *_list(dist.props.get("orderedCacheBehaviors"))]
    plain = [str((b or {}).get("pathPattern") or "default") for b in behaviours
             if (b or {}).get("viewerProtocolPolicy") not in _HTTPS_VIEWERS]
    if plain:
        return f"distribution {dist.name} lets viewers use plain HTTP ({', '.join(plain)} behaviour): set " \
               "viewerProtocolPolicy redirect-to-https or https-only"
    cert = dist.props.get("viewerCertificate") or {}
    version = str(cert.get("minimumProtocolVersion") or "")
    if not cert.get("cloudfrontDefaultCertificate") and version and not version.startswith(("TLSv1.2", "TLSv1.3")):
        return f"distribution {dist.name} accepts {version}: use TLSv1.2_2021 or later"
    return None


def _cloudfront_origin_problem(lb: Res, name: str, resources: Sequence[Res]) -> str | None:
    """Why an internet-facing load balancer is not the origin of a public service as ode builds one, or None: a
    CloudFront distribution of the stack in front of it with HTTPS for viewers, and security groups whose every
    ingress rule admits a managed prefix list (CloudFront's origin-facing addresses), never an address range or
    another group."""
    def fronts(dist: Res) -> bool:
        for origin in _list(dist.props.get("origins")):
            domain = str((origin or {}).get("domainName") or "")
            if domain.endswith(".elb.amazonaws.com") and (
                    domain.removeprefix("internal-").startswith(f"{name}-")
                    or (dist.dependencies is not None and lb.name in dist.dependencies)):
                return True
        return False

    dists = [r for r in resources if r.type == _DISTRIBUTION and fronts(r)]
    if not dists:
        return "no CloudFront distribution of the stack has it as its origin"
    viewers = [problem for problem in map(_viewer_problem, dists) if problem]
    if len(viewers) == len(dists):
        return viewers[0]
    groups = {str(g) for g in _list(lb.props.get("securityGroups"))}
    rules = [r.props for r in resources if r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
             and str(r.props.get("securityGroupId")) in groups]
    rules += [rule or {} for r in resources if r.type == "aws:ec2/securityGroup:SecurityGroup"
              and lb.dependencies is not None and r.name in lb.dependencies for rule in _list(r.props.get("ingress"))]
    wider = [rule for rule in rules if not (rule.get("prefixListId") or rule.get("prefixListIds"))
             or rule.get("cidrIpv4") or rule.get("cidrIpv6") or rule.get("cidrBlocks") or rule.get("ipv6CidrBlocks")
             or rule.get("referencedSecurityGroupId") or rule.get("securityGroups")]
    if wider:
        what = ", ".join(sorted({str(w.get("cidrIpv4") or w.get("cidrIpv6") or w.get("referencedSecurityGroupId")
                                     or w.get("cidrBlocks") or w.get("securityGroups") or "?") for w in wider}))
        return f"its security groups admit more than CloudFront's prefix list ({what})"
    return None


def encryption_in_transit(resources: Sequence[Res], config: Mapping[str, Any],
                          bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """TLS-only buckets; plain HTTP listeners only on internal load balancers, or on the origin of a public service
    (CloudFront serving viewers HTTPS in front, security groups admitting only CloudFront); distributions serve
    viewers HTTPS; TLS 1.2 custom domains."""
    tls_only: set[str] = set()
    for r in resources:
        if r.type == "aws:s3/bucketPolicy:BucketPolicy":
            for st in statements(r.props.get("policy")):
                if st.effect == "Deny" and "aws:SecureTransport" in json.dumps(st.condition or {}):
                    tls_only.add(str(r.props.get("bucket")))
    balancers = {str(r.props.get("name") or r.name): r for r in resources
                 if r.type == "aws:lb/loadBalancer:LoadBalancer"}
    internal = {name for name, r in balancers.items() if r.props.get("internal")}
    origins = {name: _cloudfront_origin_problem(r, name, resources) for name, r in balancers.items()
               if name not in internal}
    for name, r in balancers.items():
        tags = r.props["tags"] if isinstance(r.props.get("tags"), Mapping) else {}
        if name in origins and tags.get("ode:ingress") == "cloudfront" and origins[name]:
            yield r, f"load balancer {name} is tagged as the origin of a public service, but {origins[name]}"
    for r in resources:
        if r.type == "aws:s3/bucket:Bucket":
            bucket = str(r.props.get("bucket") or r.name)
            if bucket not in tls_only:
                yield r, f"bucket {bucket} has no policy denying requests without TLS (aws:SecureTransport)"
        elif r.type == _DISTRIBUTION:
            problem = _viewer_problem(r)
            if problem:
                yield r, problem
        elif r.type == "aws:lb/listener:Listener" and r.props.get("protocol") in ("HTTP", "TCP", "UDP"):
            redirects = all((a or {}).get("type") == "redirect" for a in _list(r.props.get("defaultActions")))
            arn = str(r.props.get("loadBalancerArn") or "")
            lb = arn.split("/")[2] if arn.count("/") >= 3 else ""
            if redirects:
                continue
            if lb in internal and config.get("allow_internal_http", True):
                continue
            if lb in origins and origins[lb] is None:
                continue  # only CloudFront reaches it, and CloudFront serves the viewers HTTPS
            where = "internal load balancer" if lb in internal else "load balancer that is not internal" + (
                f" ({origins[lb]})" if origins.get(lb) else "")
            yield r, f"listener {r.name} serves plain {r.props.get('protocol')} on a {where}"
        elif r.type == "aws:apigatewayv2/domainName:DomainName":
            cfg = r.props.get("domainNameConfiguration") or {}
            if cfg.get("securityPolicy") not in (None, "TLS_1_2"):
                yield r, f"domain {r.name} allows {cfg.get('securityPolicy')}: use TLS_1_2"


_ASYNC_PRINCIPALS = ("events.amazonaws.com", "sns.amazonaws.com", "s3.amazonaws.com")


def dead_letter_queues(resources: Sequence[Res], config: Mapping[str, Any],
                       bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Queues redrive to a dead-letter queue; asynchronously invoked functions keep their failures."""
    dlq_arns = set()
    for r in resources:
        if r.type == "aws:sqs/queue:Queue":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlq_arns.add(_last(redrive["deadLetterTargetArn"]))
        elif r.type == "aws:sqs/redrivePolicy:RedrivePolicy":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlq_arns.add(_last(redrive["deadLetterTargetArn"]))
    redriven = {_last(r.props.get("queueUrl")) for r in resources if r.type == "aws:sqs/redrivePolicy:RedrivePolicy"}
    for r in resources:
        if r.type != "aws:sqs/queue:Queue":
            continue
        name = str(r.props.get("name") or r.name)
        if name in dlq_arns or name in redriven or r.props.get("redrivePolicy"):
            continue
        if r.props.get("redriveAllowPolicy"):
            continue  # declared as a dead-letter queue for queues elsewhere
        yield r, f"queue {name} has no redrive policy: a message that keeps failing is retried until it expires"
    async_fns = set()
    for r in resources:
        if r.type == "aws:lambda/permission:Permission" and r.props.get("principal") in _ASYNC_PRINCIPALS:
            async_fns.add(_last(r.props.get("function")))
        elif r.type == "aws:cloudwatch/eventTarget:EventTarget" and ":lambda:" in str(r.props.get("arn", "")):
            async_fns.add(_last(r.props.get("arn")))
    handled = {_last(r.props.get("functionName")) for r in resources
               if r.type == "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
               and ((r.props.get("destinationConfig") or {}).get("onFailure"))}
    for r in resources:
        if r.type == "aws:lambda/function:Function":
            name = str(r.props.get("name") or r.name)
            if name in async_fns and name not in handled and not (r.props.get("deadLetterConfig") or {}).get(
                    "targetArn"):
                yield r, f"function {name} is invoked asynchronously but has no dead-letter queue or on-failure " \
                         "destination"


def alarms(resources: Sequence[Res], config: Mapping[str, Any],
           bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Functions, state machines, HTTP APIs, load balancers and dead-letter queues have an alarm."""
    watched: set[tuple[str, str]] = set()
    for r in resources:
        if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm":
            for key, value in (r.props.get("dimensions") or {}).items():
                watched.add((str(key), str(value)))
    dlqs = set()
    for r in resources:
        if r.type == "aws:sqs/queue:Queue":
            redrive = _json(r.props.get("redrivePolicy")) or {}
            if isinstance(redrive, Mapping) and redrive.get("deadLetterTargetArn"):
                dlqs.add(_last(redrive["deadLetterTargetArn"]))
    for r in resources:
        name = str(r.props.get("name") or r.name)
        if r.type == "aws:lambda/function:Function" and ("FunctionName", name) not in watched:
            yield r, f"function {name} has no alarm (Errors)"
        elif r.type == "aws:sfn/stateMachine:StateMachine" and not any(
                k == "StateMachineArn" and v.endswith(f":{name}") for k, v in watched):
            yield r, f"state machine {name} has no alarm (ExecutionsFailed)"
        elif r.type == "aws:sqs/queue:Queue" and name in dlqs and ("QueueName", name) not in watched:
            yield r, f"dead-letter queue {name} has no alarm on its visible messages"
        elif r.type == "aws:lb/loadBalancer:LoadBalancer" and not any(
                k == "LoadBalancer" and f"/{name}/" in f"/{v}" for k, v in watched):
            yield r, f"load balancer {name} has no alarm (5xx)"


def _own_names(resources: Sequence[Res]) -> set[str]:
    """The physical names a stack gives its resources (what its own ARNs are made of)."""
    names = set()
    for r in resources:
        for key in ("name", "bucket", "family", "namePrefix"):
            value = r.props.get(key)
            if isinstance(value, str) and len(value) > 3:
                names.add(value)
    return names


def _contains(arn: str, identifier: str) -> bool:
    """Whether an ARN (pattern) is ``identifier`` or one of its sub-resources (``.../index/*``, ``:*``)."""
    if arn == identifier:
        return True
    if identifier.startswith("arn:"):
        return arn.startswith(identifier) and arn[len(identifier)] in "/:"
    return re.search(rf"(^|[:/]){re.escape(identifier)}($|[:/])", arn) is not None


_NETWORK_ARN = re.compile(r"^arn:aws[a-z-]*:ec2:[^:]*:[^:]*:(network-interface|subnet|security-group)/\*$")


def iam_least_privilege(resources: Sequence[Res], config: Mapping[str, Any],
                        bounds: Bounds | None) -> Iterator[tuple[Res | None, str]]:
    """Roles reach only the context's own resources and, with the access granted, what it consumes."""
    if bounds is None:
        return
    own = _own_names(resources)
    network = [c for c in bounds.consumed if c.kind == "network"]
    for r in resources:
        for st in identity_statements(r):
            if st.effect != "Allow":
                continue
            for arn in st.resources:
                if arn == "*" or any(_contains(arn, n) for n in own):
                    continue
                if _NETWORK_ARN.match(arn) and network:
                    allowed = set().union(*(c.actions for c in network))
                    extra = sorted(a for a in st.actions if a not in allowed)
                    if extra:
                        yield r, f"{r.name} allows {', '.join(extra)} on {arn}, beyond the network's 'attach'"
                    continue
                owners = [c for c in bounds.consumed if any(_contains(arn, i) for i in c.identifiers)]
                if not owners:
                    # An interface whose identifiers are secret (left out of written bounds) is matched by its
                    # actions alone: the statement must stay within what that access grants.
                    owners = [c for c in bounds.consumed if not c.identifiers and set(st.actions) <= c.actions]
                if not owners:
                    yield r, f"{r.name} reaches {arn}, which is neither {bounds.context}'s own nor an interface " \
                             "its contract consumes"
                    continue
                allowed = set().union(*(c.actions for c in owners))
                extra = sorted(a for a in st.actions if a not in allowed)
                if extra:
                    used = ", ".join(f"{c.producer}/{c.interface} ({c.access})" for c in owners)
                    yield r, f"{r.name} allows {', '.join(extra)} on {arn}, beyond what {used} grants"


STACK_RULES: dict[str, StackRule] = {
    "encryption-in-transit": encryption_in_transit,
    "iam-least-privilege": iam_least_privilege,
    "dead-letter-queues": dead_letter_queues,
    "alarms": alarms,
    "tracing-permissions": tracing_permissions,
    "vpc-permissions": vpc_permissions,
    "event-source-permissions": event_source_permissions,
    "ecs-service-after-listener": ecs_service_after_listener,
}


def bounds_for(library: ContractLibrary, context: str, upstream: Mapping[str, Mapping[str, Any]],
               secret: Collection[tuple[str, str, str]] = ()) -> Bounds:
    """What ``context``'s roles may reach: the consumed interfaces, identified by their producers' outputs.
    Outputs named in ``secret`` (producer, interface, field) are left out: bounds may be written to a file."""
    from components.common import ACTIONS  # the one table of access -> actions; it imports pulumi: deferred

    consumed = []
    for link in library.links(context):
        outputs = (upstream.get(link.producer) or {}).get(link.interface)
        if not isinstance(outputs, Mapping):
            continue
        identifiers = tuple(str(v) for key, v in outputs.items() if isinstance(v, str) and len(v) > 3
                            and key in ("arn", "name", "execution_arn", "bus_arn", "bus_name", "url", "id")
                            and (link.producer, link.interface, key) not in secret)
        plain = tuple(sorted((str(key), str(v)) for key, v in outputs.items() if isinstance(v, str)
                             and (link.producer, link.interface, key) not in secret))
        producer = library.contexts.get(link.producer)
        consumed.append(Consumed(link.producer, link.interface, link.kind, link.access, identifiers,
                                 frozenset(ACTIONS.get((link.kind, link.access), ())),
                                 producer.component if producer is not None else None, plain, link.via))
    return Bounds(context, tuple(consumed))


def resource_findings(resources: Sequence[Res], settings: Mapping[str, tuple[Level, dict[str, Any]]],
                      bounds: Bounds | None = None) -> list[Finding]:
    """Every resource and stack rule not disabled in ``settings``, over one stack's resources."""
    found: list[Finding] = []
    for rule, fn in RESOURCE_RULES.items():
        level, config = settings[rule]
        if level == "disabled":
            continue
        for r in resources:
            found.extend((rule, r, msg, None) for msg in fn(r, config))
    for rule, stack_fn in STACK_RULES.items():
        level, config = settings[rule]
        if level == "disabled":
            continue
        found.extend((rule, r, msg, None) for r, msg in stack_fn(resources, config, bounds))
    return found


