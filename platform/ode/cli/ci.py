"""``ode ci up|down|gc``: one environment per branch or pull request, from a CI job.

    ode ci up   [--name N | --pr N | --branch B] [--since REF | --contexts a,b | --all] [--ttl 8h] [--base dev]
                [--reuse x,y] [--owner WHO] [--comment-file F] [--registry URL] [--engine E] ...
    ode ci down [--name N | --pr N | --branch B] ...
    ode ci gc   ...

The environment's name is ``--name``, else ``pr-<N>`` for a pull request (``--pr``, or the CI's pull-request
variables), else made from the branch (``--branch``, else the CI's branch variables, else git). Without
``--contexts`` or ``--all``, ``up`` deploys the contexts affected since ``--since`` (default: the pull request's base
branch when CI names one, else every context).

Each command prints one JSON document on stdout (progress and notes go to stderr) and, on GitHub Actions, writes
``$GITHUB_OUTPUT`` (``env``, ``deployed``, ``expires_at``, ``outputs``) and a Markdown summary to
``$GITHUB_STEP_SUMMARY``; ``--comment-file F`` writes a pull-request comment body (contexts, URLs, expiry, status).

Use a shared registry (``--registry dynamodb://TABLE?region=R`` or ``ODE_REGISTRY``) so that ``down`` and the
scheduled ``gc`` find on a fresh runner what ``up`` created on another. Under ``CI=true`` the simulated engine runs
only when named (``--engine simulated``): a runner without the Pulumi CLI fails in one line. Exit statuses are
``ode``'s (see ``ode --help``).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import click

from .. import git
from ..authoring.affected import affected
from ..errors import NothingToDeployError, UsageError
from ..execution.ephemeral import EphemeralEnvironments, record_dict
from ..execution.results import RunResult
from ..masking import mask
from ..naming import check_env_name, env_name_for_branch, env_name_for_pull_request
from ..registry.records import EnvironmentRecord
from .core import Common, common_options, engine_options, open_orchestrator, split_names

# -- naming --------------------------------------------------------------------------------------------------------


def ci_pull_request() -> str | None:
    """The pull request number CI is building, if any (GitHub: refs/pull/<N>/merge; GitLab: its IID)."""
    match = re.match(r"refs/pull/(\d+)/", os.environ.get("GITHUB_REF", ""))
    if match:
        return match.group(1)
    return os.environ.get("CI_MERGE_REQUEST_IID") or None


def ci_branch() -> str | None:
    """The branch CI is building (its variables, else git's current branch)."""
    for var in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"):
        if os.environ.get(var):
            return os.environ[var]
    return git.current_branch()


def environment_name(name: str | None, pr: str | None, branch: str | None) -> str:
    """The environment's name from the options, the CI's variables, or git."""
    if name:
        return check_env_name(name)
    if pr:
        return env_name_for_pull_request(pr)
    if branch:
        return env_name_for_branch(branch)
    found = ci_pull_request()
    if found:
        return env_name_for_pull_request(found)
    current = ci_branch()
    if current:
        return env_name_for_branch(current)
    raise UsageError("no environment name: pass --name, --pr or --branch (no CI branch variable and no git branch)")


def _since(since: str | None) -> str | None:
    if since:
        return since
    base = os.environ.get("GITHUB_BASE_REF") or os.environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    return f"origin/{base}" if base else None


# -- what a job leaves behind ------------------------------------------------------------------------------------


def write_github_output(values: dict[str, str]) -> None:
    """Append ``values`` to the file GitHub Actions names in GITHUB_OUTPUT (multi-line values delimited)."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as out:
        for key, value in values.items():
            if "\n" in value:
                delimiter = f"ode_{uuid.uuid4().hex}"
                out.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                out.write(f"{key}={value}\n")


def urls(outputs: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(context, interface, url)`` of every output that has a URL (HTTP APIs, load balancers...)."""
    found = []
    for context, interfaces in sorted(outputs.items()):
        for interface, value in sorted(interfaces.items()):
            if isinstance(value, dict):
                for key in ("url", "endpoint"):
                    if isinstance(value.get(key), str) and value[key].startswith(("http://", "https://")):
                        found.append((context, interface, value[key]))
                        break
    return found


def markdown(title: str, record: EnvironmentRecord | None, result: RunResult | None, outputs: dict[str, Any],
             note: str | None = None) -> str:
    """A Markdown report of one CI command: status, contexts, URLs, expiry and each stack's result."""
    lines = [f"### {title}", ""]
    if note:
        lines += [note, ""]
    if result is not None:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items())) or "no stacks"
        state = "ok" if result.ok else "interrupted" if result.interrupted else "failed"
        lines += [f"**Status:** {state} ({counts}){' (simulated: nothing was deployed)' if result.simulated else ''}"]
    if record is not None:
        lines += [f"**Environment:** `{record.name}` from `{record.base}`, owner {record.owner or '-'}",
                  f"**Contexts:** {', '.join(record.contexts) if record.contexts else 'all'}"
                  + (f" (reused from {record.base}: {', '.join(record.reuse)})" if record.reuse else ""),
                  f"**Expires:** {record.expires_at or '-'}"]
    found = urls(outputs)
    if found:
        lines += ["", "| context | interface | URL |", "|---|---|---|"]
        lines += [f"| {c} | {i} | {u} |" for c, i, u in found]
    if result is not None and result.stacks:
        lines += ["", "| stack | status | seconds | note |", "|---|---|---|---|"]
        for s in result.stacks:
            took = f"{s.duration_s:.1f}" if s.duration_s is not None else ""
            why = (s.error or s.reason or "").splitlines()[0] if (s.error or s.reason) else ""
            lines.append(f"| {s.stack} | {s.status} | {took} | {why.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _summary(text: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(text + "\n")


def _comment(path: Path | None, text: str) -> None:
    if path is not None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--comment-file {path}: {exc.strerror or exc}") from None


def _outputs(envs: EphemeralEnvironments, name: str) -> dict[str, Any]:
    """The public outputs of ``name``'s stacks (secret ones masked), by context."""
    return {s.context: mask(s.outputs, s.secret_outputs) for s in envs.registry.stacks(name) if s.outputs}


# -- the commands ---------------------------------------------------------------------------------------------------


def naming_options(func: Any) -> Any:
    for option in reversed([
        click.option("--name", default=None, help="The environment's name."),
        click.option("--pr", default=None, help="Pull request number: the environment is pr-<N>."),
        click.option("--branch", default=None, help="Git branch the environment's name is made from."),
    ]):
        func = option(func)
    return func


@click.group()
def ci() -> None:
    """Environments made on demand from CI jobs: up, down and gc, with GitHub outputs and summaries.

    Exit status: 0 done (also: nothing to deploy); 1 a stack failed, gc could not destroy an environment, or the
    registry cannot be used; 2 a usage or contract mistake (a missing Pulumi CLI under CI=true too); 3 the
    environment is locked by another run (retry later); 130 interrupted.
    """


@ci.command("up")
@naming_options
@click.option("--contexts", default=None, help="Deploy these contexts (comma-separated) and what they need.")
@click.option("--since", default=None, help="Deploy the contexts affected since this git ref (its merge-base with "
                                             "HEAD), and their consumers  [default: the pull request's base branch]")
@click.option("--all", "deploy_all", is_flag=True, help="Deploy every context.")
@click.option("--ttl", default=None, help="Time to live: 90s, 30m, 8h, 2d  [default: ephemeral.ttl]")
@click.option("--base", default=None, help="The long-lived environment it is made from  [default: ephemeral.base]")
@click.option("--reuse", default=None, help="Contexts taken from the base (comma-separated)  "
                                            "[default: ephemeral.reuse]; '' for none.")
@click.option("--owner", default=None, help="Who answers for it  [default: the CI actor or the user]")
@click.option("--comment-file", "comment_file", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write a pull-request comment body (Markdown) to this file.")
@engine_options
@common_options
def ci_up(common: Common, name: str | None, pr: str | None, branch: str | None, contexts: str | None,
          since: str | None, deploy_all: bool, ttl: str | None, base: str | None, reuse: str | None,
          owner: str | None, comment_file: Path | None, **engine: Any) -> None:
    """Create or update the environment of this branch or pull request and deploy what it needs."""
    env_name = environment_name(name, pr, branch)
    orchestrator = open_orchestrator(common, lenient=False, **engine)
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    wanted = split_names(contexts)
    reason = "given"
    if wanted is None and not deploy_all:
        ref = _since(since)
        if ref:
            policy = orchestrator.library.environments.ephemeral
            found = affected(orchestrator.library, ref, env=base or (policy.base if policy else None))
            wanted, reason = list(found.contexts), f"affected since {ref}"
            for context in wanted:
                common.say(f"  {context}: {found.why(context)}", err=True)
            if not wanted:
                _nothing(common, env_name, f"nothing changed since {ref}", comment_file)
                return
        else:
            reason = "every context"
    common.say(f"environment {env_name}: {', '.join(wanted) if wanted else 'every context'} ({reason})", err=True)
    try:
        record, result = envs.create(env_name, base=base, contexts=wanted, ttl=ttl,
                                     reuse=split_names(reuse, "--reuse", allow_empty=True), owner=owner)
    except NothingToDeployError as exc:
        if reason == "given":
            raise
        # Only contexts the environment reuses from its base changed: there is nothing of its own to deploy.
        _nothing(common, env_name, str(exc), comment_file)
        return
    outputs = _outputs(envs, env_name)
    doc = {**result.to_dict(), "environment": record_dict(record), "deployed": True, "outputs": outputs}
    common.emit(doc)
    write_github_output({"env": env_name, "deployed": "true", "expires_at": record.expires_at or "",
                         "ok": "true" if result.ok else "false",
                         "outputs": json.dumps(outputs, indent=2, default=str)})
    report = markdown(f"ode: environment {env_name}", record, result, outputs)
    _summary(report)
    _comment(comment_file, report)
    if result.exit_code:
        raise SystemExit(result.exit_code)


def _nothing(common: Common, env_name: str, reason: str, comment_file: Path | None) -> None:
    common.say(f"{reason}: no environment to deploy", err=True)
    common.emit({"env": env_name, "deployed": False, "reason": reason, "stacks": [], "outputs": {}})
    write_github_output({"env": env_name, "deployed": "false", "outputs": "{}"})
    report = markdown(f"ode: environment {env_name}", None, None, {}, note=f"Nothing to deploy: {reason}.")
    _summary(report)
    _comment(comment_file, report)


@ci.command("down")
@naming_options
@click.option("--comment-file", "comment_file", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write a pull-request comment body (Markdown) to this file.")
@engine_options
@common_options
def ci_down(common: Common, name: str | None, pr: str | None, branch: str | None, comment_file: Path | None,
            **engine: Any) -> None:
    """Destroy the environment of this branch or pull request (never the base's stacks it reuses)."""
    env_name = environment_name(name, pr, branch)
    orchestrator = open_orchestrator(common, lenient=True, **engine)
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    record = envs.get(env_name)
    result = envs.destroy(env_name)
    common.emit(result.to_dict())
    write_github_output({"env": env_name, "destroyed": "true" if result.ok else "false"})
    report = markdown(f"ode: environment {env_name} destroyed" if result.ok else
                      f"ode: environment {env_name} NOT fully destroyed", record, result, {})
    _summary(report)
    _comment(comment_file, report)
    if result.exit_code:
        raise SystemExit(result.exit_code)


@ci.command("gc")
@engine_options
@common_options
def ci_gc(common: Common, **engine: Any) -> None:
    """Destroy every expired environment made on demand (for a scheduled job); exit 1 if one could not be."""
    orchestrator = open_orchestrator(common, lenient=True, **engine)
    report = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator).gc()
    for rec, _ in report.destroyed:
        common.say(f"destroyed {rec.name} (expired {rec.expires_at})", err=True)
    for rec, why in report.busy:
        common.say(f"left {rec.name} for the next pass: {why}", err=True)
    for rec, error in report.failed:
        click.secho(f"error: could not destroy {rec.name}: {error}", fg="red", err=True)
    common.emit(report.to_dict())
    write_github_output({"destroyed": ",".join(r.name for r, _ in report.destroyed),
                         "failed": ",".join(r.name for r, _ in report.failed)})
    lines = ["### ode gc", ""]
    lines += [f"- destroyed `{r.name}` (expired {r.expires_at})" for r, _ in report.destroyed]
    lines += [f"- **could not destroy** `{r.name}`: {e.splitlines()[0] if e else ''}" for r, e in report.failed]
    lines += [f"- left `{r.name}` for the next pass (locked)" for r, _ in report.busy]
    if len(lines) == 2:
        lines.append(f"Nothing expired ({len(report.kept)} environments still live).")
    _summary("\n".join(lines) + "\n")
    if not report.ok:
        raise SystemExit(1)
