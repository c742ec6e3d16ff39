"""Environment rules that follow traffic: ``contract-reachable`` (every ``consumes`` edge can really be used by
the consumer's compute) and ``ingress-reachable`` (a public http-api is reachable from the internet, and nothing
else is).

Both read an :class:`EnvView`: every previewed stack of an environment under ``ode check``; the one stack (and
the stacks checked before it) in the deploy gate; the one stack in the CrossGuard pack. A hop that depends on a
stack that is not in the view is not judged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ._model import (
    Edge,
    EnvFinding,
    EnvView,
    Res,
    Statement,
    _allows,
    _json,
    _last,
    _list,
    _num,
    role_statements,
    statements,
)
from ._network import INTERNET, INTERNET_V6, Compute, Network, Peer, Verdict, compute_of

#: The AWS service whose API an interface kind is used through.
SERVICE_OF = {"table": "dynamodb", "bucket": "s3", "queue": "sqs", "event-bus": "events", "workflow": "states",
              "secret": "secretsmanager"}

#: Route authorization types a consumer can satisfy with its role (SigV4).
_IAM_AUTH = "AWS_IAM"

_PRIVATE_ECR = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


def _grant_targets(edge: Edge, routes: Sequence[str]) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs that an edge's access needs, from the producer's outputs."""
    o = edge.outputs
    arn = str(o.get("arn") or o.get("bus_arn") or "")
    found: list[tuple[str, str]] = []
    if edge.kind == "bucket" and arn:
        for action in sorted(edge.actions):
            found.append((action, arn if action == "s3:ListBucket" else f"{arn}/*"))
    elif edge.kind == "workflow" and arn:
        execution = arn.replace(":stateMachine:", ":execution:", 1) + ":x"
        for action in sorted(edge.actions):
            found.append((action, execution if action == "states:DescribeExecution" else arn))
    elif edge.kind == "http-api" and o.get("execution_arn"):
        for route in routes:  # no route known: nothing to judge
            method, _, path = route.partition(" ")
            found.append(("execute-api:Invoke", f"{o['execution_arn']}/$default/{'GET' if method == 'ANY' else method}"
                                                f"/{path.lstrip('/')}"))
    elif edge.kind in ("table", "queue", "event-bus", "secret") and arn:
        found.extend((action, arn) for action in sorted(edge.actions))
    return found


def _api_routes(view: EnvView, api_id: Any) -> list[Res]:
    return [r for r in view.of_type("aws:apigatewayv2/route:Route")
            if api_id and str(r.props.get("apiId")) == str(api_id)]


def _signs(compute: Compute, consumer: Sequence[Res], region: str | None) -> bool:
    """Whether the compute runs the team's own code, which can sign requests with SigV4: a Lambda function
    (its runtime carries the AWS SDK and the role's credentials), or tasks whose every image the team built
    (``build``: pushed to the context's repository) or keeps in a private ECR registry of the region."""
    if compute.kind == "lambda":
        return True
    built = {str(r.get("ref")) for r in consumer if r.type == "docker-build:index:Image" and r.get("ref")}
    for image in compute.images:
        match = _PRIVATE_ECR.match(image)
        if image not in built and not (match and (region is None or match.group(1) == region)):
            return False
    return bool(compute.images)


def _network_verdict(net: Network, view: EnvView, edge: Edge, compute: Compute) -> Verdict:
    """Whether ``compute`` has a network path to the interface of ``edge``."""
    if edge.kind in SERVICE_OF:
        if compute.subnets is None:
            return Verdict.there()  # outside a VPC, compute reaches AWS's public endpoints
        return net.reaches_service(compute.subnets, compute.groups, SERVICE_OF[edge.kind], compute.public_ip)
    if edge.kind != "http-api":
        return Verdict.there()
    url = str(edge.outputs.get("url") or "")
    if not url:
        return Verdict.unknown()
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    balancer = next((r for r in view.of_type("aws:lb/loadBalancer:LoadBalancer")
                     if r.outputs.get("dnsName") and r.outputs.get("dnsName") == parts.hostname), None)
    if balancer is not None and balancer.props.get("internal"):
        if compute.subnets is None:
            return Verdict.lacks(f"it runs outside a VPC and cannot reach the internal load balancer {balancer.name}")
        return net.reaches_group(compute.subnets, compute.groups,
                                 [str(s) for s in _list(balancer.props.get("subnets"))],
                                 [str(g) for g in _list(balancer.props.get("securityGroups"))], port,
                                 f"load balancer {balancer.name}")
    if compute.subnets is None:
        return Verdict.there()
    if (parts.hostname or "").endswith(".execute-api." + (view.region or "") + ".amazonaws.com") or \
            ".execute-api." in (parts.hostname or ""):
        vpc = net.vpc_of(compute.subnets[0]) if compute.subnets else None
        captured = [e for e in net.endpoint_for(vpc, "execute-api") if e.props.get("privateDnsEnabled")]
        if captured:
            return Verdict.lacks(f"execute-api endpoint {captured[0].name} has private DNS: every execute-api "
                                 "name in the VPC resolves to it, and a public HTTP API is not served there")
    return net.reaches_internet(compute.subnets, compute.groups, port, compute.public_ip)


def _subscription(view: EnvView, edge: Edge, consumer: Sequence[Res]) -> Iterator[str]:
    """The hops of an event subscription inside the consumer's stack: a rule on the producer's bus matching the
    event, a target, the target's permission to be invoked, and (for a queue) what consumes the queue."""
    bus_name, bus_arn = edge.outputs.get("bus_name"), edge.outputs.get("bus_arn")
    rules = []
    for r in consumer:
        if r.type != "aws:cloudwatch/eventRule:EventRule":
            continue
        pattern = _json(r.props.get("eventPattern"))
        if not isinstance(pattern, Mapping):
            continue
        sources, types = _list(pattern.get("source")), _list(pattern.get("detail-type"))
        on_bus = bus_name is None or str(r.props.get("eventBusName") or "default") in (str(bus_name), str(bus_arn))
        if on_bus and edge.producer in sources and edge.interface in types:
            rules.append(r)
    if not rules:
        where = f"bus {bus_name}" if bus_name else "its bus"
        yield f"no event rule on {where} matches source {edge.producer!r} and detail-type {edge.interface!r}"
        return
    for rule in rules:
        name = rule.get("name") or rule.name
        targets = [t for t in consumer if t.type == "aws:cloudwatch/eventTarget:EventTarget"
                   and str(t.props.get("rule")) == str(name)]
        if not targets:
            yield f"event rule {rule.name} has no target"
            continue
        for target in targets:
            yield from _target_hops(view, rule, target, consumer)


def _target_hops(view: EnvView, rule: Res, target: Res, consumer: Sequence[Res]) -> Iterator[str]:
    arn = str(target.props.get("arn") or "")
    rule_arn = rule.outputs.get("arn")
    if ":sqs:" in arn:
        queue = view.by_id(arn)
        if queue is None:
            return
        url = queue.outputs.get("url") or queue.outputs.get("id")
        policies = [p for p in consumer if p.type == "aws:sqs/queuePolicy:QueuePolicy"
                    and str(p.props.get("queueUrl")) in (str(url), arn)]
        stmts = [s for p in policies for s in statements(p.props.get("policy"))]
        if not _service_allowed(stmts, "events.amazonaws.com", "sqs:SendMessage", arn, rule_arn):
            yield f"queue {queue.name} has no queue policy letting event rule {rule.name} send to it " \
                  "(events.amazonaws.com, sqs:SendMessage, aws:SourceArn of the rule)"
        readers = [m for m in consumer if m.type == "aws:lambda/eventSourceMapping:EventSourceMapping"
                   and str(m.props.get("eventSourceArn")) == arn and m.props.get("enabled", True) is not False]
        if not readers:
            yield f"nothing reads queue {queue.name}: no event source mapping"
    elif ":lambda:" in arn:
        fn = view.by_id(arn)
        names = {arn, _last(arn)} | ({str(fn.get("name"))} if fn is not None else set())
        allowed = [p for p in consumer if p.type == "aws:lambda/permission:Permission"
                   and p.props.get("principal") == "events.amazonaws.com"
                   and (str(p.props.get("function")) in names or _last(p.props.get("function")) in names)
                   and (not p.props.get("sourceArn") or rule_arn is None or p.props.get("sourceArn") == rule_arn)]
        if not allowed:
            yield f"function {_last(arn)} has no lambda permission for events.amazonaws.com from rule {rule.name}"
    elif ":states:" in arn:
        roles = role_statements(consumer)
        role = _last(target.props.get("roleArn"))
        if not role:
            yield f"event target {target.name} starts a state machine without a role"
        elif role in roles and not _allows(roles[role], "states:StartExecution", arn):
            yield f"role {role} of event target {target.name} lacks states:StartExecution on {arn}"


def _service_allowed(stmts: Sequence[Statement], service: str, action: str, resource: str,
                     source_arn: Any) -> bool:
    """Whether a resource policy lets an AWS service principal perform ``action`` on ``resource`` (for events
    coming from ``source_arn``, where the statement names one)."""
    import fnmatch

    for st in stmts:
        if st.effect != "Allow":
            continue
        principal = st.principal
        services = _list(principal.get("Service")) if isinstance(principal, Mapping) else [principal]
        if service not in services and "*" not in services:
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in st.actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in st.resources or ("*",)):
            continue
        condition = st.condition if isinstance(st.condition, Mapping) else {}
        arns = [v for test in condition.values() if isinstance(test, Mapping)
                for key, v in test.items() if key.lower() == "aws:sourcearn"]
        if arns and source_arn is not None and not any(fnmatch.fnmatchcase(str(source_arn), str(a))
                                                       for a in (x for v in arns for x in _list(v))):
            continue
        return True
    return False


def _network_edge(net: Network, view: EnvView, edge: Edge, computes: Sequence[Compute],
                  consumer: Sequence[Res]) -> Iterator[str]:
    """A context that attaches to a network: its compute runs in the network's subnets, and the network serves
    what that compute needs to start and to use its own data (image pull, logs, its own tables and buckets)."""
    theirs = {str(s) for key in ("private_subnet_ids", "public_subnet_ids") for s in _list(edge.outputs.get(key))}
    for c in computes:
        if c.subnets is None:
            yield f"{c.label} does not run in the network (no VPC configuration)"
            continue
        if theirs and not set(c.subnets) <= theirs:
            yield f"{c.label} runs in subnets that are not the network's"
            continue
        needs: list[tuple[str, str]] = []
        for image in c.images:
            built = any(r.type == "docker-build:index:Image" and r.get("ref") == image for r in consumer)
            match = _PRIVATE_ECR.match(image)
            if built or (match and match.group(1) == view.region):
                needs += [("ecr.api", f"pulling image {image}"), ("ecr.dkr", f"pulling image {image}"),
                          ("s3", f"pulling the layers of image {image}")]
            else:
                verdict = net.reaches_internet(c.subnets, c.groups, 443, c.public_ip)
                if verdict.ok is False:
                    registry = image.split("/", 1)[0] if "/" in image else "Docker Hub"
                    yield f"{c.label} pulls image {image} from {registry}, outside the account's ECR: " \
                          f"{verdict.missing}"
        if c.logs:
            needs.append(("logs", "sending its logs (awslogs)"))
        for kind, service in (("table", "dynamodb"), ("bucket", "s3")):
            if c.kind == "lambda" and any(k == kind for k in view.provides.get(edge.consumer, {}).values()):
                needs.append((service, f"using its own {kind}"))
        seen = set()
        for service, why in needs:
            if service in seen:
                continue
            seen.add(service)
            verdict = net.reaches_service(c.subnets, c.groups, service, c.public_ip)
            if verdict.ok is False:
                yield f"{c.label} cannot reach {service} for {why}: {verdict.missing}"


def _edge_hops(net: Network, view: EnvView, edge: Edge) -> Iterator[str]:
    consumer = view.stacks.get(edge.consumer)
    if consumer is None:
        return
    computes = list(compute_of(consumer))
    if edge.kind != "event-bus":  # the platform's event publisher uses the bus alone
        computes = [c for c in computes if c.purpose != "publish-events" or edge.kind == "network"]
    if edge.kind == "network":
        yield from _network_edge(net, view, edge, computes, consumer)
        return
    if edge.kind == "event":
        yield from _subscription(view, edge, consumer)
        return
    if edge.access == "subscribe":
        return  # an implicit bus need: the event's own edge follows the subscription
    if not computes:
        return  # nothing in the consumer runs code that would use the interface
    routes: list[Res] = []
    if edge.kind == "http-api" and edge.component != "container-service":
        routes = _api_routes(view, edge.outputs.get("id"))
    auth_types = {str(r.props.get("authorizationType") or "NONE") for r in routes}
    roles = role_statements(consumer)
    for c in computes:
        verdict = _network_verdict(net, view, edge, c)
        if verdict.ok is False:
            yield f"{c.label}: network: {verdict.missing}"
        if edge.kind == "http-api" and edge.component == "container-service":
            continue  # reached through the network; a load balancer checks no IAM
        if edge.kind == "http-api":
            foreign = sorted(auth_types - {_IAM_AUTH, "NONE"})
            if foreign:
                yield f"{c.label}: auth: the routes use a {'/'.join(foreign)} authorizer, which a role cannot " \
                      "satisfy; the contract grants IAM (execute-api:Invoke) only"
                continue
            if routes and auth_types == {"NONE"}:
                continue
            if not _signs(c, consumer, view.region):
                yield f"{c.label}: auth: the routes require SigV4 (AWS_IAM) and image " \
                      f"{', '.join(c.images) or '(unknown)'} is not the team's own (settings.build, or the " \
                      "account's private ECR), so nothing says it signs its requests"
        role = c.role
        if role is None or role not in roles:
            continue
        keys = [str(r.props.get("routeKey")) for r in routes if r.props.get("routeKey")] or list(edge.routes)
        missing = [(a, res) for a, res in _grant_targets(edge, keys) if not _allows(roles[role], a, res)]
        if missing:
            shown = sorted({a for a, _ in missing})
            yield f"{c.label}: auth: role {role} lacks {', '.join(shown)} on {missing[0][1]}"


def _api_chains(view: EnvView) -> Iterator[EnvFinding]:
    """Inside each producer's stack: every HTTP API route reaches its integration, and API Gateway may invoke the
    integration's function (a lambda permission for apigateway.amazonaws.com)."""
    consumers: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for e in view.edges:
        if e.kind == "http-api" and e.outputs.get("id"):
            consumers.setdefault(str(e.outputs["id"]), []).append(e.consumer)
            names[str(e.outputs["id"])] = f"{e.producer}/{e.interface}"
    for context, resources in view.stacks.items():
        integrations = {r.id: r for r in resources if r.type == "aws:apigatewayv2/integration:Integration" and r.id}
        functions = {str(key): r for r in resources if r.type == "aws:lambda/function:Function"
                     for key in (r.outputs.get("invokeArn"), r.outputs.get("arn"), r.get("name")) if key}
        permissions = [r for r in resources if r.type == "aws:lambda/permission:Permission"
                       and r.props.get("principal") == "apigateway.amazonaws.com"]
        for api in resources:
            if api.type != "aws:apigatewayv2/api:Api" or not api.id:
                continue
            label = names.get(api.id, f"{context}/{api.name}")
            users = sorted(set(consumers.get(api.id, [])))
            used_by = f" (consumed by {', '.join(users)})" if users else ""
            for route in _api_routes(view, api.id):
                target = str(route.props.get("target") or "")
                integration = integrations.get(target.removeprefix("integrations/"))
                if not target:
                    yield context, route, f"{label}{used_by}: route {route.props.get('routeKey')} has no " \
                                          "integration target", None
                    continue
                if integration is None:
                    continue
                fn = functions.get(str(integration.props.get("integrationUri")))
                if fn is None:
                    continue
                fn_names = {str(fn.get("name")), str(fn.outputs.get("arn"))}
                execution = str(api.outputs.get("executionArn") or "")
                ok = any((str(p.props.get("function")) in fn_names or _last(p.props.get("function")) in fn_names)
                         and (not p.props.get("sourceArn") or not execution
                              or str(p.props.get("sourceArn")).startswith(execution))
                         for p in permissions)
                if not ok:
                    yield context, integration, f"{label}{used_by}: API Gateway may not invoke function " \
                                                f"{fn.get('name') or fn.name}: no lambda permission for " \
                                                "apigateway.amazonaws.com on this API", None
                    break


def contract_reachable(view: EnvView, config: Mapping[str, Any]) -> Iterator[EnvFinding]:
    """For every ``consumes`` edge, the consumer's compute can use the producer's interface: a network path,
    auth it can perform, and the producer's permission; each finding names consumer, producer, interface and the
    missing hop."""
    net = Network.of(view)
    for edge in view.edges:
        seen: set[str] = set()
        for hop in _edge_hops(net, view, edge):
            if hop in seen:
                continue
            seen.add(hop)
            yield edge.consumer, None, f"{edge.consumer} -> {edge.producer}/{edge.interface} " \
                                       f"({edge.kind}, {edge.access}): {hop}", edge.setting
    yield from _api_chains(view)


# ---------------------------------------------------------------------------------------------------------------
# ingress-reachable


def _open(rule_cidrs: Sequence[str]) -> bool:
    return any(c in (INTERNET, INTERNET_V6) for c in rule_cidrs)


def _public_path(view: EnvView, net: Network, context: str,
                 resources: Sequence[Res]) -> Iterator[tuple[Res | None, str]]:
    balancers = [r for r in resources if r.type == "aws:lb/loadBalancer:LoadBalancer"]
    facing = [b for b in balancers if b.props.get("internal") is False or b.props.get("internal") is None]
    if not facing:
        yield None, f"{context} is public (settings.public) but none of its load balancers is internet-facing"
        return
    services = [r for r in resources if r.type == "aws:ecs/service:Service"]
    listeners = [r for r in resources if r.type == "aws:lb/listener:Listener"]
    distributions = [r for r in resources if r.type == "aws:cloudfront/distribution:Distribution"]
    for lb in facing:
        lb_arn = lb.outputs.get("arn")
        mine = [x for x in listeners if lb_arn is None or str(x.props.get("loadBalancerArn")) == str(lb_arn)]
        groups = [str(g) for g in _list(lb.props.get("securityGroups"))]
        subnets = [str(s) for s in _list(lb.props.get("subnets"))]
        for s in subnets:
            public = net.public_subnet(s)
            if public is False:
                yield lb, f"load balancer {lb.name} is in subnet {net.subnets[s].name}, which has no route to an " \
                          "internet gateway (the network needs public_subnets)"
                break
        forwarded = {str(a.get("targetGroupArn")) for x in mine for a in _list(x.props.get("defaultActions"))
                     if isinstance(a, Mapping) and a.get("targetGroupArn")}
        forwarded |= {str(t.get("arn")) for x in mine for a in _list(x.props.get("defaultActions"))
                      if isinstance(a, Mapping) for t in _list((a.get("forward") or {}).get("targetGroups"))
                      if isinstance(t, Mapping)}
        served = [s for s in services if any(str((b or {}).get("targetGroupArn")) in forwarded
                                             for b in _list(s.props.get("loadBalancers")))]
        if services and not served:
            yield lb, f"no listener of load balancer {lb.name} forwards to the target group of the service"
        fronts = [d for d in distributions if any(
            lb.outputs.get("dnsName") and str((o or {}).get("domainName")) == str(lb.outputs.get("dnsName"))
            for o in _list(d.props.get("origins")))]
        if fronts:
            for d in fronts:
                if d.props.get("enabled") is False:
                    yield d, f"CloudFront distribution {d.name} in front of {lb.name} is disabled"
                behaviour = d.props.get("defaultCacheBehavior") or {}
                if behaviour.get("viewerProtocolPolicy") == "allow-all":
                    yield d, f"CloudFront distribution {d.name} lets viewers use plain HTTP: set " \
                             "viewerProtocolPolicy redirect-to-https or https-only"
                origin = next(o for o in _list(d.props.get("origins")) if str((o or {}).get("domainName")) ==
                              str(lb.outputs.get("dnsName")))
                custom = origin.get("customOriginConfig") or {}
                policy = custom.get("originProtocolPolicy", "https-only")
                port = int(_num(custom.get("httpsPort", 443)) if policy != "http-only" else _num(
                    custom.get("httpPort", 80)))
                if mine and not any(int(_num(x.props.get("port") or 0)) == port for x in mine):
                    yield lb, f"CloudFront reaches {lb.name} on port {port} ({policy}) but no listener is on it"
                admitted = any(r.prefix_lists and r.carries(port) for g in groups for r in net.rules_of(g, "ingress"))
                if net.known_groups(groups) and not admitted:
                    yield lb, f"the security groups of {lb.name} do not admit CloudFront's origin-facing managed " \
                              f"prefix list on {port}"
        else:
            https = [x for x in mine if x.props.get("protocol") == "HTTPS" and x.props.get("certificateArn")]
            if not https:
                yield lb, f"{lb.name} is neither behind CloudFront nor has an HTTPS listener with a certificate: " \
                          "the internet cannot reach it over HTTPS"
            elif net.allows(groups, "ingress", 443, Peer(internet=True)) is False:
                yield lb, f"the security groups of {lb.name} do not admit the internet on 443"
    for iface, outputs in (view.outputs.get(context) or {}).items():
        url = str((outputs or {}).get("url") or "") if isinstance(outputs, Mapping) else ""
        if view.provides.get(context, {}).get(iface) == "http-api" and url and not url.startswith("https://"):
            yield None, f"{context}/{iface} is public but its URL {url} is not HTTPS"


def _nothing_else(net: Network, context: str, resources: Sequence[Res], public: bool,
                  ) -> Iterator[tuple[Res | None, str]]:
    fronted = public and any(r.type == "aws:cloudfront/distribution:Distribution" for r in resources)
    public_groups = {str(g) for r in resources if r.type == "aws:lb/loadBalancer:LoadBalancer"
                     and r.props.get("internal") is False for g in _list(r.props.get("securityGroups"))}
    for r in resources:
        t, p = r.type, r.props
        if t == "aws:lb/loadBalancer:LoadBalancer" and not p.get("internal") and not public:
            yield r, f"load balancer {r.name} is internet-facing, but {context} is not public (settings.public)"
        elif t == "aws:apigatewayv2/route:Route" and str(p.get("authorizationType") or "NONE") == "NONE":
            yield r, f"route {p.get('routeKey', r.name)} of {context} needs no authorization: only a public " \
                     "container-service is reachable from the internet"
        elif t == "aws:apigateway/method:Method" and str(p.get("authorization") or "NONE") == "NONE":
            yield r, f"method {p.get('httpMethod', '')} {r.name} of {context} needs no authorization"
        elif t == "aws:lambda/functionUrl:FunctionUrl" and p.get("authorizationType") == "NONE":
            yield r, f"function URL {r.name} of {context} needs no authorization"
        elif t == "aws:cloudfront/distribution:Distribution" and not public:
            yield r, f"CloudFront distribution {r.name} serves {context}, which is not public (settings.public)"
        elif t == "aws:ecs/service:Service" and (p.get("networkConfiguration") or {}).get("assignPublicIp"):
            yield r, f"the tasks of service {r.name} get public IPs: they are reachable past the load balancer"
    for group, rules in net.rules.items():
        sg = net.groups.get(group)
        if sg is None:
            continue
        for rule in rules:
            if rule.direction != "ingress" or not _open(rule.cidrs):
                continue
            where = rule.source if rule.source is not None else sg
            if where not in resources:
                continue
            if not public or group not in public_groups:
                yield where, f"security group {sg.name} admits the whole internet ({', '.join(rule.cidrs)})" \
                             f"{'' if public else f', but {context} is not public (settings.public)'}"
            elif fronted:
                yield where, f"security group {sg.name} admits the whole internet beside CloudFront: admit only " \
                             "CloudFront's origin-facing prefix list"


def ingress_reachable(view: EnvView, config: Mapping[str, Any]) -> Iterator[EnvFinding]:
    """A public container-service is reachable from the internet over HTTPS (CloudFront in front of an
    internet-facing load balancer in public subnets that admits CloudFront's managed prefix list, or an HTTPS
    listener with a certificate), and nothing else is reachable from the internet."""
    net = Network.of(view)
    for context, resources in view.stacks.items():
        public = view.public(context) or bool(config.get("public") and context == config.get("context"))
        if public and view.components.get(context, "container-service") == "container-service":
            for res, message in _public_path(view, net, context, resources):
                yield context, res, message, "settings.public"
        for res, message in _nothing_else(net, context, resources, public):
            yield context, res, message, None
