"""Running a Pulumi program in-process under pulumi's mocks, recording the whole resource graph.

    recording = record(program, project="shop", stack="dev.orders", account="111111111111", region="us-east-1")
    recording.one("aws:dynamodb/table:Table").inputs["serverSideEncryption"]
    recording.one("aws:lambda/function:Function").dependencies      # ["orders-api-policy", "orders-api-role", ...]
    recording.outputs["orders-table"]               # the stack's exports

The mocks answer like AWS would: deterministic ids and the computed outputs each resource type really has (ARNs,
URLs, names), so that whatever a program derives from them (policies, environment variables) is exercised. Pulumi's
mock runtime is process-global and not thread-safe: :func:`record` serializes its callers.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from components.code import directory_digest

from ..masking import SECRET_MASK

_SECRET_SIG = rpc._special_sig_key  # noqa: SLF001 - the key pulumi marks secret values with
_SECRET_VALUE = rpc._special_secret_sig  # noqa: SLF001

_LOCK = threading.Lock()


def unwrap(value: Any) -> Any:
    """A value with pulumi's secret wrappers removed (for echoing inputs back; never for printing)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A value as it may be shown and stored: secret values masked, assets and archives as what they are (a
    directory or file and the digest of its content, a text with its digest) rather than a Python repr."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return SECRET_MASK
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pulumi.FileArchive):
        return {"directory": str(value.path), "digest": directory_digest(value.path)}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: plain(item) for name, item in sorted(value.assets.items())}}
    if isinstance(value, pulumi.FileAsset):
        path = Path(str(value.path))
        return {"file": str(path), "digest": _file_digest(path)}
    if isinstance(value, pulumi.StringAsset):
        # The text itself, as Pulumi's own state keeps it: a package built from it can be rebuilt from the record.
        return {"text": value.text, "digest": hashlib.sha256(value.text.encode()).hexdigest()[:16]}
    if isinstance(value, pulumi.RemoteAsset | pulumi.RemoteArchive):
        return {"uri": value.uri}
    return value


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"


def _has_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get(_SECRET_SIG) == _SECRET_VALUE or any(_has_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secret(v) for v in value)
    return False


def _short(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


class OdeMocks(pulumi.runtime.Mocks):
    """Mocks with realistic computed outputs per AWS resource type, in ``account`` and ``region``."""

    def __init__(self, account: str = "111111111111", region: str = "us-east-1"):
        self.account = account
        self.region = region

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        t, inputs = args.typ, unwrap(dict(args.inputs))
        key = _short(f"{t}/{args.name}")
        name = inputs.get("name") or f"{args.name}-{key[:7]}"
        state: dict[str, Any] = {**inputs}
        rid = f"{args.name}-{key}"
        region, acct = self.region, self.account
        if t == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{args.name}-{key[:7]}".lower()
            rid = bucket
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}",
                         bucketDomainName=f"{bucket}.s3.amazonaws.com",
                         bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com")
        elif t == "aws:dynamodb/table:Table":
            rid = name
            state.update(name=name, arn=self._arn("dynamodb", f"table/{name}"),
                         streamArn=self._arn("dynamodb", f"table/{name}/stream/2026-01-01T00:00:00.000"))
        elif t == "aws:sqs/queue:Queue":
            url = f"https://sqs.{region}.amazonaws.com/{acct}/{name}"
            rid = url
            state.update(name=name, url=url, arn=self._arn("sqs", name))
        elif t == "aws:lambda/function:Function":
            rid = name
            arn = self._arn("lambda", f"function:{name}")
            state.update(name=name, arn=arn, qualifiedArn=f"{arn}:$LATEST", version="$LATEST",
                         invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations")
        elif t == "aws:iam/role:Role":
            rid = name
            state.update(name=name, arn=f"arn:aws:iam::{acct}:role/{name}", uniqueId=f"AROA{key.upper()}")
        elif t == "aws:iam/policy:Policy":
            state.update(name=name, arn=f"arn:aws:iam::{acct}:policy/{name}")
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            rid = name
            state.update(name=name, arn=self._arn("logs", f"log-group:{name}"))
        elif t == "aws:cloudwatch/eventBus:EventBus":
            rid = name
            state.update(name=name, arn=self._arn("events", f"event-bus/{name}"))
        elif t == "aws:cloudwatch/eventRule:EventRule":
            bus = inputs.get("eventBusName") or "default"
            state.update(name=name, arn=self._arn("events", f"rule/{bus}/{name}"))
        elif t == "aws:cloudwatch/eventArchive:EventArchive":
            state.update(name=name, arn=self._arn("events", f"archive/{name}"))
        elif t == "aws:cloudwatch/metricAlarm:MetricAlarm":
            state.update(name=name, arn=self._arn("cloudwatch", f"alarm:{name}"))
        elif t == "aws:sns/topic:Topic":
            arn = self._arn("sns", name)
            rid = arn
            state.update(name=name, arn=arn)
        elif t == "aws:sns/topicSubscription:TopicSubscription":
            arn = f"{inputs.get('topic')}:{key}-0000-4000-8000-{key}{key[:4]}"
            rid = arn
            state.update(arn=arn)
        elif t == "aws:cloudwatch/dashboard:Dashboard":
            rid = inputs.get("dashboardName") or name
            state.update(dashboardArn=f"arn:aws:cloudwatch::{acct}:dashboard/{rid}")
        elif t == "aws:kms/key:Key":
            rid = f"{key}-0000-4000-8000-{key}{key[:4]}"
            state.update(keyId=rid, arn=self._arn("kms", f"key/{rid}"))
        elif t == "aws:kms/alias:Alias":
            state.update(arn=self._arn("kms", inputs.get("name", f"alias/{name}")))
        elif t == "aws:secretsmanager/secret:Secret":
            arn = self._arn("secretsmanager", f"secret:{name}-{key[:6]}")
            rid = arn
            state.update(name=name, arn=arn)
        elif t == "aws:sfn/stateMachine:StateMachine":
            arn = self._arn("states", f"stateMachine:{name}")
            rid = arn
            state.update(name=name, arn=arn)
        elif t == "aws:apigatewayv2/api:Api":
            rid = key[:10]
            state.update(name=name, apiEndpoint=f"https://{rid}.execute-api.{region}.amazonaws.com",
                         executionArn=self._arn("execute-api", rid), arn=f"arn:aws:apigateway:{region}::/apis/{rid}")
        elif t == "aws:apigatewayv2/stage:Stage":
            api = inputs.get("apiId", "api")
            stage = inputs.get("name", "$default")
            suffix = "" if stage == "$default" else f"/{stage}"
            state.update(invokeUrl=f"https://{api}.execute-api.{region}.amazonaws.com{suffix}",
                         executionArn=self._arn("execute-api", f"{api}/{stage}"),
                         arn=f"arn:aws:apigateway:{region}::/apis/{api}/stages/{stage}")
        elif t.startswith("aws:apigatewayv2/"):
            rid = key[:7]
        elif t == "aws:ec2/vpc:Vpc":
            rid = f"vpc-{key}"
            state.update(arn=self._arn("ec2", f"vpc/{rid}"), defaultSecurityGroupId=f"sg-{_short(rid)}",
                         defaultRouteTableId=f"rtb-{_short(rid)}")
        elif t == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{key}"
            state.update(arn=self._arn("ec2", f"subnet/{rid}"))
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{key}"
            state.update(name=name, arn=self._arn("ec2", f"security-group/{rid}"))
        elif t == "aws:ec2/routeTable:RouteTable":
            rid = f"rtb-{key}"
        elif t == "aws:ec2/vpcEndpoint:VpcEndpoint":
            rid = f"vpce-{key}"
            state.update(arn=self._arn("ec2", f"vpc-endpoint/{rid}"))
            if inputs.get("vpcEndpointType") == "Gateway":
                state.update(prefixListId=f"pl-{_short(inputs.get('serviceName', rid))}")
        elif t == "aws:ecr/repository:Repository":
            rid = name
            state.update(name=name, arn=self._arn("ecr", f"repository/{name}"), registryId=acct,
                         repositoryUrl=f"{acct}.dkr.ecr.{region}.amazonaws.com/{name}")
        elif t == "docker-build:index:Image":
            # The digest follows the build context's content, as a real build of the same files would.
            location = (inputs.get("context") or {}).get("location") or ""
            digest = "sha256:" + hashlib.sha256(directory_digest(location).encode()).hexdigest()
            first = (inputs.get("tags") or [f"{args.name}:latest"])[0]
            rid = digest
            state.update(digest=digest, ref=f"{first.rsplit(':', 1)[0]}@{digest}", contextHash=digest[7:23])
        elif t == "aws:ec2/internetGateway:InternetGateway":
            rid = f"igw-{key}"
            state.update(arn=self._arn("ec2", f"internet-gateway/{rid}"))
        elif t == "aws:ec2/eip:Eip":
            rid = f"eipalloc-{key}"
            state.update(allocationId=rid, publicIp=f"198.51.100.{int(key[:2], 16) % 254 + 1}",
                         arn=self._arn("ec2", f"elastic-ip/{rid}"))
        elif t == "aws:ec2/natGateway:NatGateway":
            rid = f"nat-{key}"
        elif t == "aws:ec2/route:Route":
            rid = f"r-{inputs.get('routeTableId', key)}{_short(str(inputs.get('destinationCidrBlock')))}"
        elif t == "aws:cloudfront/distribution:Distribution":
            rid = f"E{key.upper()}"
            state.update(arn=f"arn:aws:cloudfront::{acct}:distribution/{rid}", domainName=f"d{key}.cloudfront.net",
                         hostedZoneId="Z2FDTNDATAQYW2", status="Deployed", etag=f"E{key[:6].upper()}")
        elif t == "aws:ec2/flowLog:FlowLog":
            rid = f"fl-{key}"
        elif t == "aws:lb/loadBalancer:LoadBalancer":
            lb_name = inputs.get("name") or f"{args.name}"[:32]
            arn = self._arn("elasticloadbalancing", f"loadbalancer/app/{lb_name}/{key}")
            rid = arn
            scheme = "internal-" if inputs.get("internal") else ""  # AWS's DNS names tell the scheme this way
            state.update(name=lb_name, arn=arn, arnSuffix=f"app/{lb_name}/{key}",
                         dnsName=f"{scheme}{lb_name}-{key}.{region}.elb.amazonaws.com")
        elif t == "aws:lb/targetGroup:TargetGroup":
            tg = inputs.get("name") or f"{args.name}"[:32]
            # What replaces a target group (its port, protocol, target type, VPC) gives it a new ARN, as in AWS.
            key = _short("/".join(str(inputs.get(k)) for k in ("port", "protocol", "targetType", "vpcId")) + key)
            arn = self._arn("elasticloadbalancing", f"targetgroup/{tg}/{key}")
            rid = arn
            state.update(name=tg, arn=arn, arnSuffix=f"targetgroup/{tg}/{key}")
        elif t == "aws:lb/listener:Listener":
            rid = self._arn("elasticloadbalancing", f"listener/app/x/{key}")
            state.update(arn=rid)
        elif t == "aws:ecs/cluster:Cluster":
            rid = self._arn("ecs", f"cluster/{name}")
            state.update(name=name, arn=rid)
        elif t == "aws:ecs/taskDefinition:TaskDefinition":
            family = inputs.get("family", name)
            rid = family
            state.update(arn=self._arn("ecs", f"task-definition/{family}:1"), revision=1)
        elif t == "aws:ecs/service:Service":
            rid = self._arn("ecs", f"service/{name}")
            state.update(name=name)
        elif t == "aws:sns/topic:Topic":
            rid = self._arn("sns", name)
            state.update(name=name, arn=rid)
        elif "arn" not in state:
            state["arn"] = self._arn(t.split(":")[1].split("/")[0], f"{args.name}/{key}")
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{c}" for c in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": self.region}, []
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.account, "arn": f"arn:aws:iam::{self.account}:user/ode",
                    "userId": "AIDAODE", "id": self.account}, []
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if token == "aws:ec2/getPrefixList:getPrefixList":
            name = args.args.get("name") or "prefix-list"
            return {"id": f"pl-{_short(name)}", "prefixListId": f"pl-{_short(name)}", "name": name,
                    "cidrBlocks": ["52.216.0.0/15"]}, []
        if token == "aws:ec2/getManagedPrefixList:getManagedPrefixList":
            name = args.args.get("name") or "prefix-list"
            return {"id": f"pl-{_short(name)}", "name": name, "addressFamily": "IPv4", "maxEntries": 55,
                    "ownerId": "AWS", "arn": f"arn:aws:ec2:{self.region}:aws:prefix-list/pl-{_short(name)}",
                    "entries": [{"cidr": "130.176.0.0/18", "description": ""}]}, []
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = args.args.get("registryId") or self.account
            return {"id": registry, "userName": "AWS", "password": "mock-ecr-token",
                    "authorizationToken": "QVdTOm1vY2stZWNyLXRva2Vu", "expiresAt": "2099-01-01T00:00:00Z",
                    "proxyEndpoint": f"https://{registry}.dkr.ecr.{self.region}.amazonaws.com"}, []
        return {}, []


@dataclass
class RecordedResource:
    """One resource a program registered: its type, name, parent's name (None for the stack's children), inputs
    (secret values masked as ``[secret]``, assets as their directory or file and digest) and the names of the
    resources it depends on (``depends_on`` and those its inputs come from)."""

    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    custom: bool = True
    dependencies: list[str] = field(default_factory=list)
    #: The inputs with secret values in place, for in-process policy rules only: never written or printed.
    checked_inputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: What the mocks answered (``id`` and computed outputs such as ``arn``), for in-process policy rules that
    #: follow references between resources (a subnet id to its subnet): never written or printed.
    outputs: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass
class Recording:
    """Everything a program did under the mocks."""

    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RecordedResource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}: {[r.name for r in found]}")
        return found[0]

    def named(self, name: str) -> RecordedResource:
        return next(r for r in self.resources if r.name == name)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps what ``Mocks.new_resource`` never sees: parents, protect flags, components
    and the stack's exports."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.recording = Recording()
        self._names: dict[str, str] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._names[response.urn] = request.name
            inputs = rpc.deserialize_properties(request.object) if request.object else {}
            parent = self._names.get(request.parent) if request.parent else None
            urns = set(request.dependencies)
            for deps in request.propertyDependencies.values():
                urns.update(deps.urns)
            depends = sorted({self._names[u] for u in urns if u in self._names} - {request.name})
            registered = self.resources.get(response.urn)
            outputs = {**plain(unwrap(dict(registered.state or {}))), "id": registered.id} if registered else None
            self.recording.resources.append(RecordedResource(
                type=request.type, name=request.name, parent=parent, inputs=plain(dict(inputs)),
                protect=bool(request.protect), retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
                custom=bool(request.custom), dependencies=depends, checked_inputs=plain(unwrap(dict(inputs))),
                outputs=outputs))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        if "::pulumi:pulumi:Stack::" in request.urn:
            outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True) if request.outputs else {}
            for key, value in dict(outputs).items():
                if _has_secret(value):
                    self.recording.secret_outputs.add(key)
                self.recording.outputs[key] = unwrap(value)
        return super().RegisterResourceOutputs(request)


class _InlineExecutor(ThreadPoolExecutor):
    """Runs each call where it is submitted and hands back its finished future (a thread pool in name only: asyncio
    takes nothing else as a loop's default executor); it never starts a thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the caller awaits it, as from a pool's thread
            future.set_exception(exc)
        return future


def _no_stack_trace() -> Any:
    from pulumi.runtime.proto import source_pb2

    return source_pb2.StackTrace()


def record(program: Callable[[], None], *, project: str = "test", stack: str = "test",
           account: str = "111111111111", region: str = "us-east-1", preview: bool = False,
           config: dict[str, str] | None = None, secret_keys: list[str] | None = None) -> Recording:
    """Run ``program`` as a Pulumi stack under :class:`OdeMocks` and return what it registered and exported.

    Callers are serialized. ``config`` is the stack config (``{"ode:env": "dev"}``); an exception raised by the
    program propagates as it was raised.
    """
    from pulumi.runtime import resource as pulumi_resource
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_in_stack

    with _LOCK:
        monitor = RecordingMonitor(OdeMocks(account, region))
        constructed: dict[tuple[str, str], int] = {}

        def in_order() -> None:
            # The program's own order of construction, seen as each resource is constructed: resources reach the
            # monitor as their inputs resolve, in an order that said more of the runtime's threads than of the
            # program (it differed from one run to the next).
            def seen(args: pulumi.ResourceTransformationArgs) -> None:
                constructed.setdefault((args.type_, args.name), len(constructed))

            pulumi.runtime.register_stack_transformation(seen)
            program()

        loop = asyncio.new_event_loop()
        # The runtime hands each call to the monitor to a thread pool, made anew for each program; the mock monitor
        # answers at once, so the handing over (threads started, woken, joined) is all that a pool would add.
        loop.set_default_executor(_InlineExecutor())
        asyncio.set_event_loop(loop)
        # Each resource's source position is for the CLI's messages, which mocks never show; working it out (every
        # frame of the stack, with its source line) costs a tenth of a program's time. The runtime is ours alone
        # meanwhile (the lock), and is given its own back afterwards.
        traced = pulumi_resource._get_stack_trace  # noqa: SLF001
        pulumi_resource._get_stack_trace = _no_stack_trace  # noqa: SLF001
        try:
            pulumi_settings.ROOT.set(None)
            set_all_config(dict(config or {}), list(secret_keys or []))
            pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview,
                                     monitor=monitor)
            pulumi_settings.ROOT.set(None)  # set_mocks made a root stack of its own; the program runs in a new one
            loop.run_until_complete(run_in_stack(in_order))
        finally:
            pulumi_resource._get_stack_trace = traced  # noqa: SLF001
            set_all_config({}, [])
            pulumi_settings.ROOT.set(None)
            asyncio.set_event_loop(None)
            loop.close()
        last = len(constructed)
        monitor.recording.resources.sort(key=lambda r: (constructed.get((r.type, r.name), last), r.type, r.name))
        return monitor.recording
