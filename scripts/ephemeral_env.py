#!/usr/bin/env python3
"""The ephemeral-environment script for CI: one environment per branch or pull request.

    python scripts/ephemeral_env.py up   [--name N | --pr N | --branch B] [--since REF | --contexts a,b | --all]
                                         [--ttl 8h] [--base dev] [--reuse x,y] [--owner WHO]
    python scripts/ephemeral_env.py down [--name N | --pr N | --branch B]
    python scripts/ephemeral_env.py gc

Common options (before or after the action): --contracts DIR, --state-dir DIR, --engine auto|pulumi|simulated,
--parallel N.

The environment's name is ``--name``, else ``pr-<N>`` for a pull request (``--pr``, or GitHub's pull-request ref),
else made from the branch (``--branch``, else the CI's branch variables, else git). Without ``--contexts`` or
``--all``, ``up`` deploys the contexts affected since ``--since`` (default: the pull request's base branch when CI
names one, else every context).

It prints one JSON document on stdout (the environment, its stacks as ``ode up`` reports them, and the outputs of
its stacks) and, where ``GITHUB_OUTPUT`` is set, writes ``env``, ``expires_at`` and ``outputs`` there too. Progress
goes to stderr.

Exit codes, the same table as ``ode``: 0 done (also: nothing to deploy); 1 a stack failed, gc could not destroy an
environment, or the registry cannot be used; 2 a usage or contract mistake (a bad option, a broken contract, an
unknown name); 3 the environment is locked by another run (retry later); 130 interrupted (Ctrl-C or SIGTERM: running
stacks finish and are recorded first).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _ci_pull_request() -> str | None:
    """The pull request number CI is building, if any (GitHub: refs/pull/<N>/merge)."""
    match = re.match(r"refs/pull/(\d+)/", os.environ.get("GITHUB_REF", ""))
    if match:
        return match.group(1)
    return os.environ.get("CI_MERGE_REQUEST_IID") or None


def _ci_branch() -> str | None:
    for var in ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        out = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and out != "HEAD" else None


def environment_name(args: argparse.Namespace) -> str:
    """The environment's name from the options, the CI's variables, or git."""
    from ode.errors import UsageError
    from ode.naming import check_env_name, env_name_for_branch, env_name_for_pull_request

    if args.name:
        return check_env_name(args.name)
    if args.pr:
        return env_name_for_pull_request(args.pr)
    if args.branch:
        return env_name_for_branch(args.branch)
    pr = _ci_pull_request()
    if pr:
        return env_name_for_pull_request(pr)
    branch = _ci_branch()
    if branch:
        return env_name_for_branch(branch)
    raise UsageError("no environment name: pass --name, --pr or --branch (no CI branch variable and no git branch)")


def _since(args: argparse.Namespace) -> str | None:
    if args.since:
        return str(args.since)
    base = os.environ.get("GITHUB_BASE_REF") or os.environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    return f"origin/{base}" if base else None


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


def _outputs(platform: Any, env: str) -> dict[str, Any]:
    return {s.context: s.outputs for s in platform.registry.stacks(env) if s.outputs}


def _nothing(name: str, reason: str) -> int:
    print(f"{reason}: no environment to deploy", file=sys.stderr)
    doc = {"env": name, "deployed": False, "reason": reason, "stacks": [], "outputs": {}}
    print(json.dumps(doc, indent=2))
    write_github_output({"env": name, "deployed": "false", "outputs": "{}"})
    return EXIT_OK


def cmd_up(platform: Any, args: argparse.Namespace) -> int:
    from ode.affected import affected
    from ode.cli import split_names
    from ode.ephemeral import record_dict
    from ode.errors import NothingToDeployError

    name = environment_name(args)
    contexts = split_names(args.contexts)
    reason = "given"
    if contexts is None and not args.all:
        since = _since(args)
        if since:
            found = affected(platform.library, since, env=args.base or platform.base_env)
            contexts, reason = sorted(found.contexts), f"affected since {since}"
            if not contexts:
                return _nothing(name, f"nothing changed since {since}")
        else:
            reason = "every context"
    print(f"environment {name}: {', '.join(contexts) if contexts else 'every context'} ({reason})", file=sys.stderr)
    try:
        record, result = platform.envs.create(name, base=args.base, contexts=contexts, ttl=args.ttl,
                                              reuse=split_names(args.reuse, "--reuse", allow_empty=True),
                                              owner=args.owner)
    except NothingToDeployError as exc:
        if reason == "given":
            raise
        # Only contexts the environment reuses from its base changed: there is nothing of its own to deploy.
        return _nothing(name, str(exc))
    outputs = _outputs(platform, name)
    doc = {**result.to_dict(), "environment": record_dict(record), "deployed": True, "outputs": outputs}
    print(json.dumps(doc, indent=2, default=str))
    write_github_output({"env": name, "deployed": "true", "expires_at": record.expires_at or "",
                         "outputs": json.dumps(outputs, indent=2, default=str)})
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_down(platform: Any, args: argparse.Namespace) -> int:
    name = environment_name(args)
    result = platform.envs.destroy(name)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    write_github_output({"env": name, "destroyed": "true" if result.ok else "false"})
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_gc(platform: Any, args: argparse.Namespace) -> int:
    report = platform.envs.gc()
    for rec, _ in report.destroyed:
        print(f"destroyed {rec.name} (expired {rec.expires_at})", file=sys.stderr)
    for rec, error in report.failed:
        print(f"could not destroy {rec.name}: {error}", file=sys.stderr)
    print(json.dumps(report.to_dict(), indent=2, default=str))
    return EXIT_OK if report.ok else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--contracts", default="contracts", help="The contracts library directory.")
    common.add_argument("--state-dir", default=os.environ.get("ODE_STATE_DIR", ".ode"),
                        help="Where the platform keeps its state (default ./.ode or ODE_STATE_DIR).")
    common.add_argument("--engine", choices=["auto", "pulumi", "simulated"], default="auto")
    common.add_argument("--parallel", type=int, default=None, help="Stacks deployed at once.")
    naming = argparse.ArgumentParser(add_help=False)
    naming.add_argument("--name", help="The environment's name.")
    naming.add_argument("--pr", help="Pull request number: the environment is pr-<N>.")
    naming.add_argument("--branch", help="Git branch the environment's name is made from.")

    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[common],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = top.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", parents=[common, naming], help="Create or update the environment.")
    up.add_argument("--contexts", help="Deploy these contexts (comma-separated) and what they need.")
    up.add_argument("--since", help="Deploy the contexts affected since this git ref, and their consumers.")
    up.add_argument("--all", action="store_true", help="Deploy every context.")
    up.add_argument("--ttl", help="Time to live (90s, 30m, 8h, 2d); default from environments.yaml.")
    up.add_argument("--base", help="The long-lived environment it is made from; default ephemeral.base.")
    up.add_argument("--reuse", help="Contexts taken from the base (comma-separated); default ephemeral.reuse.")
    up.add_argument("--owner", help="Who answers for it; default the CI actor or the user.")
    actions.add_parser("down", parents=[common, naming], help="Destroy the environment.")
    actions.add_parser("gc", parents=[common], help="Destroy every expired environment.")
    return top


class _Platform:
    """The library, registry, engine and orchestrator one run of the script uses."""

    def __init__(self, args: argparse.Namespace):
        from ode.cli import Common, guard_children, load_lenient, open_registry
        from ode.contracts import load_library
        from ode.engines import make_engine
        from ode.ephemeral import EphemeralEnvironments
        from ode.orchestrator import Orchestrator

        state_dir = Path(args.state_dir)
        common = Common(Path(args.contracts), state_dir, json=True)
        # gc works from the registry: one broken contract must not keep expired environments alive.
        self.library = load_lenient(common) if args.action == "gc" else load_library(args.contracts)
        policy = self.library.environments.ephemeral
        self.base_env = policy.base if policy else None
        self.registry = open_registry(common)
        engine = make_engine(args.engine, self.library, state_dir,
                             announce=lambda line: print(line, file=sys.stderr))
        if engine.name == "pulumi":
            guard_children()
        options: dict[str, Any] = {"parallel": args.parallel} if args.parallel else {}
        self.orchestrator = Orchestrator(self.library, self.registry, engine, **options)
        self.envs = EphemeralEnvironments(self.library, self.registry, self.orchestrator)


def main(argv: list[str] | None = None) -> int:
    from ode.cli import exit_status, handle_sigterm
    from ode.errors import OdeError

    args = parser().parse_args(argv)
    handle_sigterm()
    try:
        platform = _Platform(args)
        return {"up": cmd_up, "down": cmd_down, "gc": cmd_gc}[args.action](platform, args)
    except OdeError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
