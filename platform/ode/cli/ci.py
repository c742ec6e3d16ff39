"""``ode ci up|down|gc``: one environment per branch or pull request, from a CI job.

    ode ci up   [--name N | --pr N | --branch B] [--since REF | --contexts a,b | --all] [--ttl 8h] [--base dev]
                [--reuse x,y] [--owner WHO] [--comment-file F] [--registry URL] [--engine E] ...
    ode ci down [--name N | --pr N | --branch B] ...
    ode ci gc   ...

The environment's name is ``--name``, else ``pr-<N>`` for a pull request (``--pr``, or the CI's pull-request
variables and event), else made from ``--branch B``: ``B`` made short and valid, then ``-`` and 7 characters of a
hash of the whole branch name, so that two branches never share an environment (``feature/Add_Payments`` ->
``feature-add-pa-xxxxxxx``). Outside a pull request, and without one of those options, ``up`` and ``down`` refuse
in one line that names the environment ``--branch`` would give: a push to ``main`` never makes an environment
unasked. Without ``--contexts`` or ``--all``, ``up`` deploys the contexts affected since ``--since`` (default: the
pull request's base branch when CI names one, else every context, which it says).

Each command prints one JSON document on stdout (progress and notes go to stderr) and, on GitHub Actions, writes
``$GITHUB_OUTPUT`` (``env``, ``deployed``, ``expires_at``, ``outputs``) and a Markdown summary to
``$GITHUB_STEP_SUMMARY``; ``--comment-file F`` writes a pull-request comment body (contexts, URLs, expiry, status)
that starts with a hidden marker, ``<!-- ode:env=NAME -->``, by which a job finds its comment to update it in place.
A side output that cannot be written after the work is done is one warning: the exit status is the work's.

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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import click

from .. import git, rendering
from ..authoring.affected import affected
from ..clock import utcnow
from ..errors import NothingToDeployError, UsageError
from ..execution.ephemeral import EphemeralEnvironments, record_dict
from ..execution.results import RunResult
from ..masking import mask
from ..naming import check_env_name, env_name_for_branch, env_name_for_pull_request
from ..registry.records import EnvironmentRecord
from .core import Common, common_options, engine_options, made_on_demand, open_orchestrator, split_names

# -- naming --------------------------------------------------------------------------------------------------------


def ci_pull_request() -> str | None:
    """The pull request number CI is building, if any (GitHub: refs/pull/<N>/merge, or the pull request of the
    event that started the workflow, as ``pull_request_target`` gives it; GitLab: its IID)."""
    match = re.match(r"refs/pull/(\d+)/", os.environ.get("GITHUB_REF", ""))
    if match:
        return match.group(1)
    if os.environ.get("GITHUB_EVENT_NAME", "").startswith("pull_request") and os.environ.get("GITHUB_EVENT_PATH"):
        try:
            event = json.loads(Path(os.environ["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
            number = (event.get("pull_request") or {}).get("number")
        except (OSError, ValueError, AttributeError):
            number = None  # an unreadable event file names no pull request: the options must
        if isinstance(number, int):
            return str(number)
    return os.environ.get("CI_MERGE_REQUEST_IID") or None


def ci_branch() -> str | None:
    """The branch CI is building (its variables, else git's current branch)."""
    for var in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"):
        if os.environ.get(var):
            return os.environ[var]
    return git.current_branch()


class Naming(NamedTuple):
    """An environment's name and where it came from, as people read it."""

    name: str
    source: str


def naming(name: str | None, pr: str | None, branch: str | None, *, doing: str = "make") -> Naming:
    """The environment's name from the options, else the pull request CI builds. Outside a pull request and
    without an option a :class:`UsageError` names the options, and what ``--branch`` would give: deploying (or
    destroying) an environment for whatever branch a job runs on would surprise more than it helps."""
    if name:
        return Naming(check_env_name(name), "named with --name")
    if pr:
        return Naming(env_name_for_pull_request(pr), f"pull request {pr} (--pr)")
    if branch:
        made = env_name_for_branch(branch)
        return Naming(made, f"from branch {branch!r} (--branch): the branch's name made short and valid, then "
                            f"{made.rsplit('-', 1)[1]!r}, a hash of the whole branch name that keeps two branches "
                            "apart")
    found = ci_pull_request()
    if found:
        return Naming(env_name_for_pull_request(found), f"pull request {found}, as CI names it")
    current = ci_branch()
    offer = f"--branch {current} (environment {env_name_for_branch(current)})" if current else "--branch B"
    where = f" (this job builds branch {current!r})" if current else ""
    raise UsageError(f"not a pull request{where}: pass --pr N (environment pr-N), {offer} or --name N to say "
                     f"which environment to {doing}")


def _since(since: str | None) -> str | None:
    if since:
        return since
    base = os.environ.get("GITHUB_BASE_REF") or os.environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    return f"origin/{base}" if base else None


# -- what a job leaves behind ------------------------------------------------------------------------------------


def write_github_output(values: dict[str, str]) -> None:
    """Append ``values`` to the file GitHub Actions names in GITHUB_OUTPUT (multi-line values delimited); an
    ``OSError`` when it cannot be written."""
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


def marker(env_name: str) -> str:
    """The hidden line that starts every report of ``env_name``: a job finds its pull-request comment by it."""
    return f"<!-- ode:env={env_name} -->"


def markdown(title: str, record: EnvironmentRecord | None, result: RunResult | None, outputs: dict[str, Any],
             note: str | None = None, *, now: datetime | None = None) -> str:
    """A Markdown report of one CI command: status, contexts, URLs, expiry (``in 7 h (2026-12-05 05:19 UTC)``)
    and each stack's result."""
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
                  f"**Expires:** {rendering.moment(record.expires_at, now or utcnow())}"]
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


def _comment(path: Path | None, env_name: str | None, text: str) -> None:
    if path is not None:
        path.write_text(f"{marker(env_name)}\n{text}" if env_name else text, encoding="utf-8")


def check_comment_file(path: Path | None) -> None:
    """Refuse, before anything is deployed, a ``--comment-file`` that cannot be written: a folder, or in a folder
    that is missing or not writable (a usage mistake: exit 2, nothing done)."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--comment-file {path}: is a folder")
    if not folder.is_dir():
        raise UsageError(f"--comment-file {path}: no folder {folder}")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise UsageError(f"--comment-file {path}: not writable")


def leave(common: Common, *, outputs: dict[str, str] | None = None, report: str | None = None,
          comment_file: Path | None = None, env_name: str | None = None) -> None:
    """Write what a job leaves behind: ``$GITHUB_OUTPUT``, the step summary, the comment file (the report after
    ``env_name``'s :func:`marker`). The work is done by now: a file that cannot be written is one warning, never
    an error (the exit status stays the work's)."""
    writes: list[tuple[str, Callable[[], None]]] = []
    if outputs is not None:
        writes.append((f"GITHUB_OUTPUT {os.environ.get('GITHUB_OUTPUT', '')}", lambda: write_github_output(outputs)))
    if report is not None:
        writes.append((f"GITHUB_STEP_SUMMARY {os.environ.get('GITHUB_STEP_SUMMARY', '')}", lambda: _summary(report)))
        if comment_file is not None:
            writes.append((f"--comment-file {comment_file}", lambda: _comment(comment_file, env_name, report)))
    for what, write in writes:
        try:
            write()
        except OSError as exc:
            common.warn(f"{what}: {exc.strerror or exc}: not written")


def _outputs(envs: EphemeralEnvironments, name: str) -> dict[str, Any]:
    """The public outputs of ``name``'s stacks (secret ones masked), by context."""
    return {s.context: mask(s.outputs, s.secret_outputs) for s in envs.registry.stacks(name) if s.outputs}


# -- the commands ---------------------------------------------------------------------------------------------------


def naming_options(func: Any) -> Any:
    for option in reversed([
        click.option("--name", default=None, help="The environment's name."),
        click.option("--pr", default=None, help="Pull request number: the environment is pr-<N>  [default: the "
                                                "pull request CI builds]"),
        click.option("--branch", default=None,
                     help="An environment per git branch: its name made short and valid, then 7 characters of a "
                          "hash of the whole name (feature/Add_Payments -> feature-add-paym-uvir2hc). Outside a pull "
                          "request one of --pr, --branch or --name is needed."),
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
@click.option("--comment-file", "comment_file", default=None, type=click.Path(path_type=Path),
              help="Write a pull-request comment body (Markdown) to this file.")
@engine_options
@common_options
def ci_up(common: Common, name: str | None, pr: str | None, branch: str | None, contexts: str | None,
          since: str | None, deploy_all: bool, ttl: str | None, base: str | None, reuse: str | None,
          owner: str | None, comment_file: Path | None, **engine: Any) -> None:
    """Create or update the environment of this pull request (or --branch, --name) and deploy what changed.

    The contexts are those changed since --since (default: the pull request's base branch) and their consumers,
    or --contexts, or --all; without any of them and no base branch, every context. Which environment and which
    contexts, and why, are said on stderr first."""
    named = naming(name, pr, branch)
    env_name = named.name
    check_comment_file(comment_file)
    wanted, reused = split_names(contexts), split_names(reuse, "--reuse", allow_empty=True)
    orchestrator = open_orchestrator(common, lenient=False, names={"--contexts": wanted, "--reuse": reused}, **engine)
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
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
            reason = ("no --since, and CI names no pull request base to compare with (--since REF deploys what "
                      "changed since REF)")
    elif wanted is None:
        reason = "--all"
    common.say(f"environment {env_name}, {named.source}", err=True)
    shown = "every context" if wanted is None else ", ".join(wanted)
    common.say(f"deploying {shown} ({'--contexts' if reason == 'given' else reason})", err=True)
    try:
        record, result = envs.create(env_name, base=base, contexts=wanted, ttl=ttl, reuse=reused, owner=owner)
    except NothingToDeployError as exc:
        if reason == "given":
            raise
        # Only contexts the environment reuses from its base changed: there is nothing of its own to deploy.
        _nothing(common, env_name, str(exc), comment_file)
        return
    outputs = _outputs(envs, env_name)
    now = utcnow()
    common.say(f"{env_name} {rendering.expiry(record.expires_at, now)}", err=True)
    doc = {**result.to_dict(), "environment": record_dict(record), "deployed": True, "outputs": outputs}
    common.emit(doc)
    leave(common, outputs={"env": env_name, "deployed": "true", "expires_at": record.expires_at or "",
                           "ok": "true" if result.ok else "false",
                           "outputs": json.dumps(outputs, indent=2, default=str)},
          report=markdown(f"ode: environment {env_name}", record, result, outputs, now=now),
          comment_file=comment_file, env_name=env_name)
    if result.exit_code:
        raise SystemExit(result.exit_code)


def _nothing(common: Common, env_name: str, reason: str, comment_file: Path | None) -> None:
    common.say(f"{reason}: no environment to deploy", err=True)
    common.emit({"env": env_name, "deployed": False, "reason": reason, "stacks": [], "outputs": {}})
    leave(common, outputs={"env": env_name, "deployed": "false", "outputs": "{}"},
          report=markdown(f"ode: environment {env_name}", None, None, {}, note=f"Nothing to deploy: {reason}."),
          comment_file=comment_file, env_name=env_name)


@ci.command("down")
@naming_options
@click.option("--comment-file", "comment_file", default=None, type=click.Path(path_type=Path),
              help="Write a pull-request comment body (Markdown) to this file.")
@engine_options
@common_options
def ci_down(common: Common, name: str | None, pr: str | None, branch: str | None, comment_file: Path | None,
            **engine: Any) -> None:
    """Destroy the environment of this branch or pull request (never the base's stacks it reuses)."""
    env_name = naming(name, pr, branch, doing="destroy").name
    check_comment_file(comment_file)
    orchestrator = open_orchestrator(common, lenient=True, **engine)
    envs = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator)
    record = made_on_demand(envs, env_name)
    result = envs.destroy(env_name)
    common.emit(result.to_dict())
    leave(common, outputs={"env": env_name, "destroyed": "true" if result.ok else "false"},
          report=markdown(f"ode: environment {env_name} destroyed" if result.ok else
                          f"ode: environment {env_name} NOT fully destroyed", record, result, {}),
          comment_file=comment_file, env_name=env_name)
    if result.exit_code:
        raise SystemExit(result.exit_code)


@ci.command("gc")
@engine_options
@common_options
def ci_gc(common: Common, **engine: Any) -> None:
    """Destroy every expired environment made on demand (for a scheduled job); exit 1 if one could not be."""
    orchestrator = open_orchestrator(common, lenient=True, **engine)
    report = EphemeralEnvironments(orchestrator.library, orchestrator.registry, orchestrator).gc()
    now = utcnow()
    for rec, _ in report.destroyed:
        common.say(f"destroyed {rec.name} ({rendering.expiry(rec.expires_at, now)})", err=True)
    for rec, why in report.busy:
        common.say(f"left {rec.name} for the next pass: {why}", err=True)
    for rec, error in report.failed:
        click.secho(f"error: could not destroy {rec.name}: {error}", fg="red", err=True)
    common.emit(report.to_dict())
    lines = ["### ode gc", ""]
    lines += [f"- destroyed `{r.name}` ({rendering.expiry(r.expires_at, now)})" for r, _ in report.destroyed]
    lines += [f"- **could not destroy** `{r.name}`: {e.splitlines()[0] if e else ''}" for r, e in report.failed]
    lines += [f"- left `{r.name}` for the next pass (locked)" for r, _ in report.busy]
    if len(lines) == 2:
        lines.append(f"Nothing expired ({len(report.kept)} environments still live).")
    leave(common, outputs={"destroyed": ",".join(r.name for r, _ in report.destroyed),
                           "failed": ",".join(r.name for r, _ in report.failed)},
          report="\n".join(lines) + "\n")
    if not report.ok:
        raise SystemExit(1)
