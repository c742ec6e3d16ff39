"""``ode check``: every policy rule over an environment's stacks (:mod:`ode.policy.environment`), as text, JSON or
SARIF; exit 1 when a mandatory rule is broken."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..contracts import load_library
from ..contracts.policies import RULES
from ..errors import UsageError
from ..policy.environment import check_environment
from ..sarif import check_log
from .core import Common, check_contexts, common_options, env_option, split_names


@click.command()
@env_option("The environment whose levels and configuration apply.")
@click.option("--contexts", "contexts", default=None, help="Only these contexts (comma-separated) and what they need.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
              help="Violations as text, JSON, or SARIF 2.1.0 for code scanning.")
@click.option("--output", "output", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report to this file instead of stdout.")
@common_options
def check(common: Common, env: str, contexts: str | None, fmt: str, output: Path | None) -> None:
    """Every policy rule over an environment's stacks; exit 1 when a mandatory rule is broken."""
    library = load_library(common.contracts, env)
    wanted = split_names(contexts)
    check_contexts(library, wanted, env=env)
    report = check_environment(library, env, wanted).report
    if fmt == "sarif":
        text = json.dumps(check_log(report, RULES), indent=2)
    elif fmt == "json" or common.json:
        text = json.dumps(report.to_dict(), indent=2)
    else:
        text = report.to_text()
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--output {output}: {exc.strerror or exc}") from None
        common.say(report.to_text().splitlines()[-1], err=True)
    else:
        click.echo(text)
    if not report.ok:
        sys.exit(1)
