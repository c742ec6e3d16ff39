"""``--executor codebuild://PROJECT?region=R``: each stack's operation runs as an AWS CodeBuild build.

    ode executor init codebuild --project ode-deploy --region eu-west-1 --source-location https://github.com/org/repo
    ode up --env prod --executor 'codebuild://ode-deploy?region=eu-west-1'

A stack that is ready starts one build of the project (``StartBuild``): the commit the coordinator is at as the
source version, the task document (:mod:`ode.executors.tasks`: no secret in it) in the ``ODE_TASK`` variable, and a
time limit. The project's buildspec (:func:`buildspec`) runs ``ode stack run`` on it; the coordinator follows the
build (``BatchGetBuilds``) and tails its CloudWatch Logs stream for progress and, on the last line, the result.
Cancelling a stack stops its build (``StopBuild``): CodeBuild sends the build SIGTERM, which the buildspec turns into
SIGINT for ``ode stack run`` and its ``pulumi``, so that the engine cancels and saves its state. A build that ends
without a result (killed, out of memory, timed out by CodeBuild) fails its stack with the build's status and phase
and the log's last lines; its lease runs out and the next run redoes the stack.

``PROJECT`` may hold ``{account}`` and ``{env}``: one project per account (``codebuild://ode-{account}?region=R``),
each with a service role that may assume only that account's deploy roles.

:func:`init_project` (``ode executor init codebuild``) creates, or brings up to date, the project, its
least-privilege service role and a log group with a retention (and a KMS key where given); again, it changes
nothing.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import aws_clients
from ..errors import OdeError, UsageError
from ..execution.executor import StackTask
from .opening import ExecutorSetup, ExecutorUrl, parse_url
from .remote import Delivery, RemoteExecutor, lost
from .tasks import RESULT_KEY, find_result

#: Build states after which nothing more happens.
DONE = ("SUCCEEDED", "FAILED", "FAULT", "STOPPED", "TIMED_OUT")
#: The variable a build receives its task in.
TASK_VARIABLE = "ODE_TASK"
#: Seconds between two looks at a build (``?poll=SECONDS``).
DEFAULT_POLL_S = 5.0


def buildspec(install: str) -> str:
    """The project's buildspec: install ode (``install``), then run the task with ``ode stack run``, in a session of
    its own, SIGTERM (a stopped build) passed on to it as SIGINT (Ctrl-C: ``pulumi`` cancels and saves its state)."""
    return f"""version: 0.2
env:
  shell: bash
phases:
  install:
    commands:
      - {install}
  build:
    commands:
      - |
        task_file="$(mktemp)"
        printf '%s' "${TASK_VARIABLE}" > "$task_file"
        setsid ode stack run --task "$task_file" &
        child=$!
        trap 'kill -INT -- "-$child" 2>/dev/null' TERM INT
        wait "$child"; code=$?
        while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
        exit "$code"
"""


class CodeBuildService:
    """The CodeBuild and CloudWatch Logs calls the executor makes (boto3 clients from :mod:`ode.aws_clients`)."""

    def __init__(self, region: str | None):

        self.region = region
        self.codebuild = aws_clients.client("codebuild", region)
        self.logs = aws_clients.client("logs", region)

    def start(self, project: str, *, source_version: str | None, variables: dict[str, str],
              timeout_minutes: int | None) -> str:
        """Start a build of ``project``; its id."""
        params: dict[str, Any] = {
            "projectName": project,
            "environmentVariablesOverride": [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in
                                             variables.items()]}
        if source_version:
            params["sourceVersion"] = source_version
        if timeout_minutes is not None:
            params["timeoutInMinutesOverride"] = timeout_minutes
        return str(self.codebuild.start_build(**params)["build"]["id"])

    def build(self, build_id: str) -> dict[str, Any]:
        """The build as ``BatchGetBuilds`` describes it (``buildStatus``, ``currentPhase``, ``logs``...)."""
        found = self.codebuild.batch_get_builds(ids=[build_id]).get("builds") or []
        return dict(found[0]) if found else {}

    def stop(self, build_id: str) -> None:
        self.codebuild.stop_build(id=build_id)

    def log_lines(self, group: str, stream: str, token: str | None) -> tuple[list[str], str | None]:
        """The log's lines after ``token`` (from the start when None), and the token to go on from; none while
        the stream does not exist yet."""
        params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            params["nextToken"] = token
        lines: list[str] = []
        try:
            while True:
                got = self.logs.get_log_events(**params)
                lines.extend(str(e.get("message", "")).rstrip("\n") for e in got.get("events") or [])
                following = got.get("nextForwardToken")
                if not following or following == params.get("nextToken"):
                    return lines, following or token
                params["nextToken"] = following
        except self.logs.exceptions.ResourceNotFoundException:
            return lines, token


def open_codebuild(url: str, setup: ExecutorSetup, service: CodeBuildService | None = None) -> CodeBuildExecutor:
    """The ``codebuild`` entry point: ``codebuild://PROJECT?region=R[&poll=SECONDS]``."""
    parsed = parse_url(url)
    parsed.refuse_unknown({"region", "poll"})
    if not parsed.location:
        raise UsageError(f"--executor {url}: expected codebuild://PROJECT?region=REGION")
    region = parsed.params.get("region")
    return CodeBuildExecutor(setup, parsed, service or CodeBuildService(region))


class _Build:
    def __init__(self, executor: CodeBuildExecutor, task: StackTask, project: str,
                 line: Callable[[str], None], done: Callable[[dict[str, Any] | BaseException], None]):
        self.executor, self.task, self.project, self.line, self.done = executor, task, project, line, done
        self.build_id = ""

    def cancel(self, hard: bool = False) -> None:
        """StopBuild (CodeBuild's SIGTERM, which the buildspec passes on as SIGINT); there is nothing harder."""
        if self.build_id:
            try:
                self.executor.service.stop(self.build_id)
            except Exception:  # noqa: BLE001 - a build that ended meanwhile
                pass

    def follow(self) -> None:
        """Follow the build to its end: phases and log lines as progress, then the result from the log."""
        service, poll = self.executor.service, self.executor.poll_s
        lines: list[str] = []
        token: str | None = None
        phase = ""
        build: dict[str, Any] = {}
        unknown = 0
        where = {"kind": "codebuild", "build_id": self.build_id, "project": self.project}
        try:
            while True:
                build = service.build(self.build_id)
                if build.get("currentPhase") and build["currentPhase"] != phase:
                    phase = build["currentPhase"]
                    self.line(f"codebuild {self.build_id}: {phase}")
                logs = build.get("logs") or {}
                group, stream = logs.get("groupName"), logs.get("streamName")
                if group and stream:
                    new, token = service.log_lines(group, stream, token)
                    for text in new:
                        lines.append(text)
                        if not text.lstrip().startswith("{") or RESULT_KEY not in text:
                            self.line(text)
                if build.get("buildStatus") in DONE:
                    break
                if not build:
                    unknown += 1
                    if unknown * poll > 120:  # CodeBuild has no such build (deleted, another region)
                        raise LookupError(f"CodeBuild knows no build {self.build_id}")
                time.sleep(poll)
        except Exception as exc:  # noqa: BLE001 - CodeBuild or Logs no longer answer: the stack fails with why
            self.done(lost(self.task.stack, f"build {self.build_id} could not be followed: {type(exc).__name__}: "
                                            f"{exc}", where))
            return
        answer = find_result("\n".join(lines))
        link = (build.get("logs") or {}).get("deepLink")
        if answer is None:
            tail = "; ".join(t for t in lines[-5:] if t.strip()) or "no log lines"
            self.done(lost(self.task.stack, f"build {self.build_id} ended {build.get('buildStatus')} in phase "
                                            f"{phase or '?'} without a result: {tail}", where))
            return
        answer["worker"] = where
        answer["lines"] = [t for t in lines if RESULT_KEY not in t]
        if link:
            answer["log"] = link
        self.done(answer)


class CodeBuildExecutor(RemoteExecutor):
    """Stacks as CodeBuild builds (see the module's docstring)."""

    name = "codebuild"

    def __init__(self, setup: ExecutorSetup, url: ExecutorUrl, service: CodeBuildService):
        super().__init__(setup, url, remote=True)
        self.project = url.location
        self.service = service
        self.poll_s = float(url.number("poll", low=0.05, high=300, default=DEFAULT_POLL_S) or DEFAULT_POLL_S)
        if not self.dispatch.commit:
            setup.say(f"executor: {setup.library.root} is not in a git work tree: builds take the project's "
                      "default source version, which may not hold these contracts")

    def project_for(self, task: StackTask) -> str:
        """The project of ``task``'s stack: ``{account}`` and ``{env}`` filled in."""
        place = self.setup.library.environment(task.spec.settings_env)
        return self.project.replace("{account}", place.account).replace("{env}", task.spec.settings_env)

    def _deliver(self, key: str, task: StackTask, document: dict[str, Any], line: Callable[[str], None],
                 done: Callable[[dict[str, Any] | BaseException], None]) -> Delivery:
        timeout = document.get("timeout_s")
        # CodeBuild counts whole minutes, five at least; the worker keeps the exact limit itself.
        minutes = None if timeout is None else max(5, math.ceil(float(timeout) / 60) + 1)
        build = _Build(self, task, self.project_for(task), line, done)
        build.build_id = self.service.start(build.project, source_version=self.dispatch.commit,
                                            variables={TASK_VARIABLE: json.dumps(document, sort_keys=True)},
                                            timeout_minutes=minutes)
        line(f"codebuild: started build {build.build_id}")
        threading.Thread(target=build.follow, name=f"ode-codebuild-{task.stack}", daemon=True).start()
        return build


# -- ode executor init codebuild ---------------------------------------------------------------------------------


def service_role_policy(*, account: str, region: str, project: str, log_group: str, deploy_roles: list[str],
                        backend_url: str | None, kms_key_arn: str | None, registry_url: str | None,
                        ode_project: str) -> dict[str, Any]:
    """The project's service role policy, least privilege: write its own log group, assume the environments'
    deploy roles (the program's provider does, per environment), read and write the Pulumi state under the
    backend's prefix, use the secrets provider's KMS key, take stack leases (and only those) in the registry's
    table, and read the project's published outputs in SSM (secret upstream values)."""
    from urllib.parse import urlsplit

    statements: list[dict[str, Any]] = [{
        "Sid": "BuildLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [f"arn:aws:logs:{region}:{account}:log-group:{log_group}",
                     f"arn:aws:logs:{region}:{account}:log-group:{log_group}:*"]}]
    if deploy_roles:
        statements.append({"Sid": "AssumeDeployRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"],
                           "Resource": sorted(set(deploy_roles))})
    if backend_url and backend_url.startswith("s3://"):
        parts = urlsplit(backend_url)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        objects = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*"
        statements.append({"Sid": "PulumiState", "Effect": "Allow",
                           "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": [objects]})
        listing: dict[str, Any] = {"Sid": "PulumiStateList", "Effect": "Allow", "Action": ["s3:ListBucket"],
                                   "Resource": [f"arn:aws:s3:::{bucket}"]}
        if prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}
        statements.append(listing)
    if kms_key_arn:
        statements.append({"Sid": "SecretsProvider", "Effect": "Allow",
                           "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                           "Resource": [kms_key_arn]})
    if registry_url and registry_url.startswith("dynamodb://"):
        table = urlsplit(registry_url).netloc
        statements.append({"Sid": "StackLeases", "Effect": "Allow",
                           "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                      "dynamodb:DeleteItem"],
                           "Resource": [f"arn:aws:dynamodb:{region}:{account}:table/{table}"],
                           "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["STACKLEASE#*"]}}})
    statements.append({"Sid": "PublishedOutputs", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                       "Resource": [f"arn:aws:ssm:{region}:{account}:parameter/ode/{ode_project}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def _trust(account: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]}


def init_project(*, project: str, region: str | None, library: Any, source_type: str, source_location: str,
                 install: str, log_retention_days: int = 30, kms_key_arn: str | None = None,
                 backend_url: str | None = None, registry_url: str | None = None, envs: list[str] | None = None,
                 image: str = "aws/codebuild/standard:7.0", compute_type: str = "BUILD_GENERAL1_MEDIUM",
                 timeout_minutes: int = 60) -> dict[str, Any]:
    """Create or bring up to date the CodeBuild project that runs stacks (its service role, policy and log group
    included); what each part was: ``created``, ``updated`` or ``unchanged``."""
    from botocore.exceptions import BotoCoreError, ClientError


    try:
        return _init(project=project, region=region, library=library, source_type=source_type,
                     source_location=source_location, install=install, log_retention_days=log_retention_days,
                     kms_key_arn=kms_key_arn, backend_url=backend_url, registry_url=registry_url, envs=envs,
                     image=image, compute_type=compute_type, timeout_minutes=timeout_minutes, clients=aws_clients)
    except (ClientError, BotoCoreError) as exc:
        raise OdeError(f"ode executor init codebuild {project}: {exc}") from None


def _init(*, project: str, region: str | None, library: Any, source_type: str, source_location: str,
          install: str, log_retention_days: int, kms_key_arn: str | None, backend_url: str | None,
          registry_url: str | None, envs: list[str] | None, image: str, compute_type: str,
          timeout_minutes: int, clients: Any) -> dict[str, Any]:
    sts, iam = clients.client("sts", region), clients.client("iam", region)
    logs, codebuild = clients.client("logs", region), clients.client("codebuild", region)
    region = region or codebuild.meta.region_name
    account = str(sts.get_caller_identity()["Account"])
    wanted = envs or sorted(library.environments.environments)
    unknown = [e for e in wanted if e not in library.environments.environments]
    if unknown:
        known = ", ".join(library.environments.environments)
        raise UsageError(f"--env {unknown[0]!r}: not in environments.yaml ({known})")
    places = {e: library.environment(e) for e in wanted}
    roles = [p.role_arn for p in places.values() if p.role_arn and p.account == account]
    report: dict[str, Any] = {"project": project, "region": region, "account": account,
                              "environments": [e for e, p in places.items() if p.account == account]}
    notes = [f"{e} has no role_arn in environments.yaml: builds deploy it with the service role itself, which has "
             "no deploy permissions; give it a deploy role" for e, p in places.items()
             if p.account == account and not p.role_arn]
    notes += [f"{e} is in account {p.account}: create a project there (codebuild://ode-{{account}}?region=R)"
              for e, p in places.items() if p.account != account]

    # The log group, with its retention and key.
    group = f"/ode/codebuild/{project}"
    found = [g for g in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
             if g["logGroupName"] == group]
    if not found:
        params: dict[str, Any] = {"logGroupName": group}
        if kms_key_arn:
            params["kmsKeyId"] = kms_key_arn
        logs.create_log_group(**params)
        logs.put_retention_policy(logGroupName=group, retentionInDays=log_retention_days)
        report["log_group"] = "created"
    else:
        changed = False
        if found[0].get("retentionInDays") != log_retention_days:
            logs.put_retention_policy(logGroupName=group, retentionInDays=log_retention_days)
            changed = True
        if kms_key_arn and found[0].get("kmsKeyId") != kms_key_arn:
            logs.associate_kms_key(logGroupName=group, kmsKeyId=kms_key_arn)
            changed = True
        report["log_group"] = "updated" if changed else "unchanged"

    # The service role and its one inline policy.
    role_name = f"{project}-service-role"[:64]
    trust = _trust(account)
    policy = service_role_policy(account=account, region=region, project=project, log_group=group,
                                 deploy_roles=roles, backend_url=backend_url, kms_key_arn=kms_key_arn,
                                 registry_url=registry_url, ode_project=library.project)
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust),
                               Description=f"ode: runs stacks in CodeBuild project {project}")["Role"]
        report["role"] = "created"
    else:
        current = role.get("AssumeRolePolicyDocument")
        current = json.loads(current) if isinstance(current, str) else current
        if current != trust:
            iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))
            report["role"] = "updated"
        else:
            report["role"] = "unchanged"
    try:
        existing = iam.get_role_policy(RoleName=role_name, PolicyName="ode-worker")["PolicyDocument"]
        existing = json.loads(existing) if isinstance(existing, str) else existing
    except iam.exceptions.NoSuchEntityException:
        existing = None
    if existing != policy:
        iam.put_role_policy(RoleName=role_name, PolicyName="ode-worker", PolicyDocument=json.dumps(policy))
        report["policy"] = "created" if existing is None else "updated"
    else:
        report["policy"] = "unchanged"
    report["role_arn"] = role["Arn"]
    report["policy_document"] = policy

    # The project.
    source: dict[str, Any] = {"type": source_type, "buildspec": buildspec(install)}
    if source_location:
        source["location"] = source_location
    if source_type in ("GITHUB", "GITHUB_ENTERPRISE", "BITBUCKET", "CODECOMMIT"):
        source["gitCloneDepth"] = 1
    settings: dict[str, Any] = {
        "name": project, "description": "ode: one stack's operation per build (`ode stack run`)",
        "source": source, "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {"type": "LINUX_CONTAINER", "image": image, "computeType": compute_type,
                        "privilegedMode": False},
        "serviceRole": role["Arn"], "timeoutInMinutes": timeout_minutes,
        "logsConfig": {"cloudWatchLogs": {"status": "ENABLED", "groupName": group},
                       "s3Logs": {"status": "DISABLED"}}}
    if kms_key_arn:
        settings["encryptionKey"] = kms_key_arn
    projects = codebuild.batch_get_projects(names=[project]).get("projects") or []
    if not projects:
        codebuild.create_project(**settings)
        report["codebuild_project"] = "created"
    elif _differs(projects[0], settings):
        codebuild.update_project(**settings)
        report["codebuild_project"] = "updated"
    else:
        report["codebuild_project"] = "unchanged"
    report["executor"] = f"codebuild://{project}?region={region}"
    report["notes"] = notes
    return report


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the project as it is differs from ``wanted`` in what ode sets."""
    now_source, want_source = current.get("source") or {}, wanted["source"]
    if any(now_source.get(k) != v for k, v in want_source.items()):
        return True
    now_env = current.get("environment") or {}
    if any(now_env.get(k) != v for k, v in wanted["environment"].items()):
        return True
    group = ((current.get("logsConfig") or {}).get("cloudWatchLogs") or {}).get("groupName")
    if group != wanted["logsConfig"]["cloudWatchLogs"]["groupName"]:
        return True
    if wanted.get("encryptionKey") and current.get("encryptionKey") != wanted["encryptionKey"]:
        return True
    return bool(current.get("serviceRole") != wanted["serviceRole"]
                or current.get("timeoutInMinutes") != wanted["timeoutInMinutes"])
