"""Monitoring that reaches someone: every alarm of the sample notifies its context's encrypted alarm topic (or the
topic environments.yaml or a contract names), the topics are subscribed as environments.yaml says, and each context
has one dashboard whose graphs name that context's real resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from components.common import AlarmRouting, ContextArgs, Identity
from components.data_store import DataStore, DataStoreArgs
from components.kinds import DataStoreSettings
from ode.contracts import AlarmSubscriptions, load_library
from ode.engines import ResourceChange, StackResult
from ode.engines.simulated import record
from ode.program import alarm_routing

from .conftest import SAMPLE
from .test_components import Keeper, deploy, of_type

TOPIC, KEY, ALARM = "aws:sns/topic:Topic", "aws:kms/key:Key", "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD, SUBSCRIPTION = "aws:cloudwatch/dashboard:Dashboard", "aws:sns/topicSubscription:TopicSubscription"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Keeper:
    return deploy(tmp_path_factory.mktemp("dev"), "dev")


def _topic_arn(result: StackResult, account: str = "111111111111", region: str = "us-east-1") -> str:
    topics = of_type(result, TOPIC)
    assert len(topics) == 1, [t.name for t in topics]
    return f"arn:aws:sns:{region}:{account}:{topics[0].inputs['name']}"


def test_every_alarm_notifies_its_contexts_encrypted_topic(dev: Keeper) -> None:
    alarmed = 0
    for context, result in dev.results.items():
        alarms = of_type(result, ALARM)
        if not alarms:
            assert not of_type(result, TOPIC), f"{context}: a topic with nothing to alarm on"
            continue
        alarmed += 1
        arn = _topic_arn(result)
        assert arn.endswith(f":shop-dev-{context}-alarms")
        for a in alarms:
            assert a.inputs["alarmActions"] == [arn] and a.inputs["okActions"] == [arn], (context, a.name)
        topic = of_type(result, TOPIC)[0]
        (key,) = of_type(result, KEY)
        assert topic.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:us-east-1:111111111111:key/")
        assert key.name in topic.dependencies and key.inputs["enableKeyRotation"] is True
        key_policy = json.loads(key.inputs["policy"])["Statement"]
        cloudwatch = [s for s in key_policy if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
        assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        (policy,) = of_type(result, "aws:sns/topicPolicy:TopicPolicy")
        (statement,) = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert statement["Action"] == "sns:Publish" and statement["Resource"] == arn
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert alarmed >= 6  # every kind that runs something alarms


def test_dead_letter_queues_alarm_on_their_visible_messages(dev: Keeper) -> None:
    for context, result in dev.results.items():
        watched = {a.inputs["dimensions"].get("QueueName") for a in of_type(result, ALARM)
                   if a.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"}
        for q in of_type(result, "aws:sqs/queue:Queue"):
            if q.inputs["name"].endswith("-dlq"):
                assert q.inputs["name"] in watched, (context, q.inputs["name"])


def test_subscriptions_are_those_of_environments_yaml(dev: Keeper) -> None:
    wanted = load_library(SAMPLE).environment("dev").alarms
    assert wanted.email and wanted.https  # the sample subscribes both kinds
    expected = {("email", e) for e in wanted.email} | {("https", u) for u in wanted.https}
    for context, result in dev.results.items():
        if not of_type(result, TOPIC):
            continue
        arn = _topic_arn(result)
        subs = of_type(result, SUBSCRIPTION)
        assert {(s.inputs["protocol"], s.inputs["endpoint"]) for s in subs} == expected, context
        assert {s.inputs["topic"] for s in subs} == {arn}


def _body(result: StackResult) -> dict[str, Any]:
    dashboards = of_type(result, DASHBOARD)
    assert len(dashboards) == 1, [d.name for d in dashboards]
    return json.loads(dashboards[0].inputs["dashboardBody"])  # type: ignore[no-any-return]


def _metrics(body: dict[str, Any]) -> list[list[Any]]:
    return [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]


def _named(result: StackResult, type_token: str) -> list[ResourceChange]:
    return of_type(result, type_token)


def test_one_dashboard_per_context_graphs_its_real_resources(dev: Keeper) -> None:
    for context, result in dev.results.items():
        body = _body(result)
        assert of_type(result, DASHBOARD)[0].inputs["dashboardName"] == f"shop-dev-{context}-dashboard"
        metrics = _metrics(body)
        for fn in _named(result, "aws:lambda/function:Function"):
            shown = {m[1] for m in metrics if m[0] == "AWS/Lambda" and fn.inputs["name"] in m}
            assert shown >= {"Invocations", "Errors", "Duration", "Throttles"}, (context, fn.inputs["name"])
        for q in _named(result, "aws:sqs/queue:Queue"):
            assert any(m[0] == "AWS/SQS" and q.inputs["name"] in m for m in metrics), (context, q.inputs["name"])
        for sm in _named(result, "aws:sfn/stateMachine:StateMachine"):
            arn = f"arn:aws:states:us-east-1:111111111111:stateMachine:{sm.inputs['name']}"
            assert {m[1] for m in metrics if arn in m} >= {"ExecutionsFailed", "ExecutionsStarted"}
        for table in _named(result, "aws:dynamodb/table:Table"):
            assert any(m[0] == "AWS/DynamoDB" and table.inputs["name"] in m for m in metrics)
        if _named(result, "aws:apigatewayv2/api:Api"):
            assert {m[1] for m in metrics if m[0] == "AWS/ApiGateway"} >= {"5xx", "Count", "Latency"}
        if _named(result, "aws:lb/loadBalancer:LoadBalancer"):
            assert "HTTPCode_Target_5XX_Count" in {m[1] for m in metrics if m[0] == "AWS/ApplicationELB"}
        for bus in _named(result, "aws:cloudwatch/eventBus:EventBus"):
            assert any(bus.inputs["name"] in m for m in metrics)
        for flow in _named(result, "aws:ec2/flowLog:FlowLog"):
            (group,) = [g for g in _named(result, "aws:cloudwatch/logGroup:LogGroup") if g.name.endswith("flow-logs")]
            logs = [w for w in body["widgets"] if w["type"] == "log"]
            assert logs and f"SOURCE '{group.inputs['name']}'" in logs[0]["properties"]["query"], flow.name
        assert len(body["widgets"]) > 1, context  # a title and at least one graph


# -- the routing rules, on one component and on the model ----------------------------------------------------------


def _store(routing: AlarmRouting, settings: DataStoreSettings | None = None) -> list[Any]:
    identity = Identity(project="shop", env="dev", context="files", owner="team", account="111111111111",
                        region="us-east-1")
    args = DataStoreArgs(identity=identity, settings=settings or DataStoreSettings(),
                         provides={"inbox": {"kind": "queue"}}, alarms=routing)
    assert isinstance(args, ContextArgs)
    return list(record(lambda: DataStore("files", args), project="shop", stack="dev.files").resources)


def test_an_existing_topic_in_environments_yaml_replaces_the_topics() -> None:
    existing = "arn:aws:sns:us-east-1:111111111111:platform-alarms"
    made = _store(AlarmRouting(topic_arn=existing))
    assert not [r for r in made if r.type in (TOPIC, KEY, SUBSCRIPTION)]
    alarms = [r for r in made if r.type == ALARM]
    assert alarms and all(a.inputs["alarmActions"] == [existing] == a.inputs["okActions"] for a in alarms)


def test_a_contracts_alarm_topic_wins() -> None:
    own = "arn:aws:sns:us-east-1:111111111111:files-team"
    made = _store(AlarmRouting(email=("a@example.com",)), DataStoreSettings(alarm_topic_arn=own))
    assert not [r for r in made if r.type in (TOPIC, SUBSCRIPTION)]
    assert all(a.inputs["alarmActions"] == [own] for a in made if a.type == ALARM)


def test_alarms_field_is_validated_and_named() -> None:
    ok = AlarmSubscriptions.model_validate({"email": ["ops@example.com"], "https": ["https://hooks.example.com/x"]})
    assert ok.email == ["ops@example.com"]
    for bad, where in (({"email": ["not-an-address"]}, "email.0"), ({"https": ["http://hooks.example.com"]}, "https"),
                       ({"https": ["ftp://x"]}, "https"), ({"topic_arn": "arn:aws:sqs:us-east-1:1:q"}, "topic_arn"),
                       ({"topic_arn": "arn:aws:sns:us-east-1:111111111111:t", "email": ["a@b.co"]}, "topic_arn"),
                       ({"emails": ["a@b.co"]}, "emails")):
        with pytest.raises(ValidationError) as info:
            AlarmSubscriptions.model_validate(bad)
        assert where in str(info.value), (bad, str(info.value))


def test_the_sample_library_rejects_a_bad_alarm_address(tmp_path: Path) -> None:
    import shutil

    from ode.contracts import ContractErrors

    library = tmp_path / "contracts"
    shutil.copytree(SAMPLE, library)
    text = (library / "environments.yaml").read_text()
    (library / "environments.yaml").write_text(text.replace("oncall-dev@example.com", "oncall at example"))
    with pytest.raises(ContractErrors) as info:
        load_library(library)
    assert "environments.dev.alarms.email" in str(info.value) and "environments.yaml" in str(info.value)


def test_environments_made_on_demand_subscribe_only_when_asked() -> None:
    alarms = AlarmSubscriptions(email=["ops@example.com"], https=["https://hooks.example.com/x"])
    assert alarm_routing(alarms, made_on_demand=False, routing=AlarmRouting) == AlarmRouting(
        email=("ops@example.com",), https=("https://hooks.example.com/x",))
    assert alarm_routing(alarms, made_on_demand=True, routing=AlarmRouting) == AlarmRouting()
    asked = alarms.model_copy(update={"ephemeral": True})
    assert alarm_routing(asked, made_on_demand=True, routing=AlarmRouting).email == ("ops@example.com",)
