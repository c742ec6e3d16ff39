"""``ode stack run`` (a worker runs one stack's task) and ``ode executor init`` (set up where workers run)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..executors.codebuild import init_project
from ..executors.tasks import result_document
from ..executors.worker import EXIT_INTERRUPTED, die_with_parent, run_document, worker_identity
from .core import EXIT_USAGE, Common, common_options


@click.group()
def stack() -> None:
    """One stack's operation on a worker: what the executors (Dask, CodeBuild) run for each stack."""


@stack.command("run")
@click.option("--task", "task_path", required=True, metavar="FILE|-",
              help="The task document (JSON) an executor handed out; - reads it from standard input.")
@click.option("--root", "root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The checkout the task's contracts are found in  [default: the git work tree of the current "
                   "directory]")
def run(task_path: str, root: Path | None) -> None:
    """Run one stack's task: take its lease, read its secret upstream values where the task says, run the operation
    with the engine it names, and print the result document (JSON, one line) on standard output; progress goes to
    standard error. Exit status 0 done, 1 the stack failed (or its lease is held: another delivery runs it), 2 a
    bad task, 130 interrupted."""

    die_with_parent()
    # Started in the background of a shell without job control (a buildspec's `setsid ode stack run &`), this
    # process would ignore SIGINT, and so would the `pulumi` it starts: Ctrl-C must stop the operation, always.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        text = sys.stdin.read() if task_path == "-" else Path(task_path).read_text()
        doc: Any = json.loads(text)
    except (OSError, ValueError) as exc:

        error = UsageError(f"task {task_path}: not a JSON document ({str(exc).splitlines()[0]})")
        click.echo(json.dumps(result_document("?", "?", error=error, worker=worker_identity())))
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)

    def progress(line: str) -> None:
        click.echo(line, err=True)

    try:
        answer, status = run_document(doc, progress=progress, root=root)
    except KeyboardInterrupt:  # before the operation started: nothing ran
        sys.exit(EXIT_INTERRUPTED)
    click.echo(json.dumps(answer, default=str))
    if not answer.get("ok"):
        why = answer.get("error") or {}
        click.echo(f"error: {answer.get('stack')}: {why.get('message', 'failed')}", err=True)
    sys.exit(status)


@click.group()
def executor() -> None:
    """Where stacks run beyond this machine: set up an executor's workers."""


@executor.group("init")
def init() -> None:
    """Create (or bring up to date) what an executor's workers need; run again, it changes nothing."""


@init.command("codebuild")
@click.option("--project", "project", required=True, help="The CodeBuild project's name (one per account).")
@click.option("--region", "region", default=None, help="Its region  [default: AWS_REGION]")
@click.option("--source-type", "source_type", default="GITHUB", show_default=True,
              type=click.Choice(["GITHUB", "GITHUB_ENTERPRISE", "BITBUCKET", "CODECOMMIT", "S3"]),
              help="Where builds fetch the repository holding the contracts.")
@click.option("--source-location", "source_location", required=True,
              help="The repository's URL (or bucket/key for S3); builds check out the coordinator's commit.")
@click.option("--install", "install", default="python3 -m pip install --quiet 'ondemandenv[dask]'",
              show_default=True, help="How a build installs ode (pin the version the coordinator runs).")
@click.option("--log-retention-days", "retention", type=int, default=30, show_default=True,
              help="How long the build logs are kept.")
@click.option("--kms-key-arn", "kms_key_arn", default=None,
              help="The KMS key of the stacks' secrets provider (awskms://), also encrypting the project and its "
                   "logs.")
@click.option("--backend-url", "backend_url", default=None, envvar="ODE_BACKEND_URL",
              help="The Pulumi state backend builds use (s3://BUCKET/PREFIX); its prefix alone is granted.")
@click.option("--env", "envs", multiple=True, help="Environments this project deploys (repeatable)  [default: all "
                                                   "of this account's]")
@click.option("--image", "image", default="aws/codebuild/standard:7.0", show_default=True)
@click.option("--compute-type", "compute_type", default="BUILD_GENERAL1_MEDIUM", show_default=True,
              help="A pulumi run takes 0.5 to 1 GB.")
@click.option("--timeout-minutes", "timeout_minutes", type=click.IntRange(5, 480), default=60, show_default=True)
@common_options
def init_codebuild(common: Common, project: str, region: str | None, source_type: str, source_location: str,
                   install: str, retention: int, kms_key_arn: str | None, backend_url: str | None,
                   envs: tuple[str, ...], image: str, compute_type: str, timeout_minutes: int) -> None:
    """The CodeBuild project that runs stacks: a least-privilege service role (its log group, the environments'
    deploy roles, the state prefix, the KMS key, stack leases in the registry's table), a buildspec that runs `ode
    stack run`, a log group with a retention. Run again, it changes nothing."""

    library = common.workspace().library()
    report = init_project(project=project, region=region, library=library, source_type=source_type,
                          source_location=source_location, install=install, log_retention_days=retention,
                          kms_key_arn=kms_key_arn, backend_url=backend_url, registry_url=common.registry,
                          envs=list(envs) or None, image=image, compute_type=compute_type,
                          timeout_minutes=timeout_minutes)
    if common.json:
        common.emit(report)
        return
    for part in ("log_group", "role", "policy", "codebuild_project"):
        click.echo(f"{part.replace('_', ' '):<18} {report[part]}")
    for note in report["notes"]:
        common.say(f"note: {note}", err=True)
    common.say(f"use it: --executor '{report['executor']}'", err=True)
