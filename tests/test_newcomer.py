"""A newcomer's first hour at the command line: Pulumi's habits (`up` shows and asks on a terminal, `--yes`),
`destroy` naming what it destroys, `ode ci up` outside a pull request, did-you-mean for names, NO_COLOR and
FORCE_COLOR, quiet progress, ODE_ENV, human expiry times, the PR comment's marker, shell completion, and `ode ci`'s
side outputs that cannot be written.

Terminal behaviour is driven through a pseudo-terminal (``pty``), every wait bounded; the rest runs ``ode`` as a
process, or in-process with click's runner where the terminal does not matter.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ode.cli import core as cli
from ode.naming import env_name_for_branch
from ode.rendering import status_table

from .conftest import ROOT, SAMPLE

#: What a developer's shell or a CI runner may set, and these tests set themselves when they mean to.
_AMBIENT = ("NO_COLOR", "FORCE_COLOR", "ODE_ENV", "CI", "TERM", "ODE_ENGINE", "ODE_REGISTRY", "ODE_STATE_DIR")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # a colour or style escape (not the live view's cursor moves)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_")) and k not in _AMBIENT}
    env.update({"ODE_SIMULATE_PROGRAMS": "0", "ODE_ENGINE": "simulated", **extra})
    return {k: v for k, v in env.items() if v != ""}  # "" in extra: leave the variable out


def ode(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``ode ARGS`` in ``cwd`` as a process with no terminal (stdin, stdout and stderr are pipes)."""
    return subprocess.run([sys.executable, "-m", "ode.cli", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=_env(**extra), timeout=180)


def on_terminal(cwd: Path, args: list[str], answers: dict[str, str] | None = None, timeout: float = 120,
                **extra: str) -> tuple[int, str]:
    """``ode ARGS`` on a pseudo-terminal (stdin, stdout and stderr), answering each question that shows
    ``prompt`` (a key of ``answers``) once; its exit status and everything it wrote. Killed after ``timeout``."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ode.cli", *args], cwd=cwd, env=_env(TERM="xterm", **extra),
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    pending = dict(answers or {})
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other side closed: the process is done
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
                for prompt in [p for p in pending if p.encode() in seen]:
                    os.write(master, pending.pop(prompt).encode())
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"ode {' '.join(args)} did not end within {timeout} s on a terminal:\n{seen.decode()[-2000:]}")
        return proc.wait(timeout=30), seen.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def invoke(*args: str, **extra: str) -> Any:
    """``ode ARGS`` in this process (click's runner: no terminal), the environment as :func:`_env` makes it."""
    env: dict[str, str | None] = {k: None for k in _AMBIENT}
    env.update({"ODE_SIMULATE_PROGRAMS": "0", "ODE_ENGINE": "simulated", **extra})
    return CliRunner().invoke(cli.main, list(args), env=env)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A folder holding a copy of the sample library as ``contracts/`` (ode's defaults: ./contracts, ./.ode)."""
    shutil.copytree(SAMPLE, tmp_path / "contracts")
    return tmp_path


@pytest.fixture(scope="module")
def deployed_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample with dev deployed by the simulated engine, once for the module (a test changes a copy)."""
    root = tmp_path_factory.mktemp("deployed")
    shutil.copytree(SAMPLE, root / "contracts")
    done = ode(root, "up", "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def dev(deployed_once: Path, tmp_path: Path) -> Path:
    """A folder of its own holding the sample library and its state, with dev deployed (simulated)."""
    for part in ("contracts", ".ode"):
        shutil.copytree(deployed_once / part, tmp_path / part)
    return tmp_path


def _statuses(cwd: Path, env: str = "dev") -> dict[str, str]:
    done = ode(cwd, "status", "--env", env, "--json")
    assert done.returncode == 0, done.stderr
    return {s["context"]: s["status"] for s in json.loads(done.stdout)["stacks"]}


# -- Pulumi's habits -------------------------------------------------------------------------------------------------


def test_up_takes_yes_as_pulumi_does_and_goes_ahead_without_a_terminal(shop: Path) -> None:
    for flag in ("--yes", "-y"):
        done = ode(shop, "up", "--env", "dev", "--contexts", "catalog", flag)
        assert done.returncode == 0, done.stderr
        assert "[y/N]" not in done.stderr
    plain = ode(shop, "up", "--env", "dev", "--contexts", "identity")  # CI: no terminal, no --yes, no question
    assert plain.returncode == 0 and "[y/N]" not in plain.stderr
    assert _statuses(shop).keys() >= {"catalog", "identity"}


def test_up_on_a_terminal_shows_which_stacks_deploy_and_why_then_asks(shop: Path) -> None:
    args = ["up", "--env", "dev", "--contexts", "catalog"]
    status, text = on_terminal(shop, args, {"[y/N]": "n\n"})
    assert status == 1, text
    assert re.search(r"dev\.catalog\s+deploy\s+after dev\.shared-bus", text), text
    assert re.search(r"dev\.shared-bus\s+deploy\s+new stack", text), text
    assert "up dev: 2 to deploy, 0 unchanged" in text and "Deploy 2 stacks of dev? [y/N]" in text
    assert "declined: nothing was deployed" in text and "Traceback" not in text
    assert _statuses(shop) == {}

    status, text = on_terminal(shop, args, {"[y/N]": "y\n"})
    assert status == 0, text
    assert _statuses(shop) == {"shared-bus": "succeeded", "catalog": "succeeded"}

    # nothing to deploy: nothing to ask (an answer is offered, and must not be wanted)
    status, text = on_terminal(shop, args, {"[y/N]": "n\n"})
    assert status == 0 and "[y/N]" not in text and "2 unchanged" in text, text

    status, text = on_terminal(shop, ["up", "--env", "dev", "--contexts", "identity", "--yes"])
    assert status == 0 and "[y/N]" not in text and "to deploy" not in text, text
    assert _statuses(shop)["identity"] == "succeeded"


def test_up_diff_shows_each_changed_property_before_deploying(shop: Path) -> None:
    programs = {"ODE_SIMULATE_PROGRAMS": "1"}
    assert ode(shop, "up", "--env", "dev", "--contexts", "catalog", **programs).returncode == 0
    path = shop / "contracts" / "catalog.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["settings"]["memory_mb"] = 1024
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = ode(shop, "up", "--env", "dev", "--contexts", "catalog", "--diff", **programs)
    assert done.returncode == 0, done.stderr
    before = done.stderr.split("up dev: 1 to deploy")[0]  # what was shown before anything ran
    assert re.search(r"dev\.catalog\s+deploy\s+changed: settings  \[1 to update\]", before), before
    assert re.search(r"update\s+aws:lambda/function:Function", before), before
    assert re.search(r"memorySize: \d+ -> 1024", before), before
    assert _statuses(shop)["catalog"] == "succeeded"


# -- destroy says what it destroys; help says what commands do ---------------------------------------------------


def test_destroy_names_every_stack_it_destroys_and_why(dev: Path) -> None:
    asked = ode(dev, "destroy", "--env", "dev", "--contexts", "orders")  # no terminal, no --yes: refused
    assert asked.returncode == 2 and "needs confirmation: pass --yes" in asked.stderr
    listed = dict(re.findall(r"^  (dev\.\S+)\s+(.*)$", asked.stderr, re.M))
    assert listed == {"dev.orders": "asked for", "dev.fulfilment": "consumes dev.orders",
                      "dev.storefront": "consumes dev.orders"}, asked.stderr
    assert len(_statuses(dev)) == 10  # nothing went

    done = ode(dev, "destroy", "--env", "dev", "--contexts", "orders", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    destroyed = [s["stack"] for s in json.loads(done.stdout)["stacks"]]
    assert sorted(destroyed) == sorted(listed)
    # consumers go first: the listing's order is the destroy's
    order = list(dict(re.findall(r"^  (dev\.\S+)\s+(.*)$", done.stderr, re.M)))
    assert order.index("dev.orders") == len(order) - 1


def test_destroy_on_a_terminal_lists_the_stacks_then_asks(dev: Path) -> None:
    status, text = on_terminal(dev, ["destroy", "--env", "dev", "--contexts", "payments"], {"[y/N]": "n\n"})
    assert status == 1, text
    assert re.search(r"dev\.payments\s+asked for", text) and re.search(r"dev\.orders\s+consumes dev\.payments", text)
    assert re.search(r"dev\.fulfilment\s+consumes dev\.orders", text), text  # a consumer of a consumer, named
    assert "Destroy these 4 stacks of dev? [y/N]" in text
    assert len(_statuses(dev)) == 10


def test_help_says_what_destroy_and_status_do() -> None:
    destroy = invoke("destroy", "--help").output
    contexts = destroy.split("--contexts", 1)[1].split("\n  -", 1)[0]
    assert "consumes" in " ".join(contexts.split()) and "what they need" not in contexts
    status = " ".join(invoke("status", "--help").output.split())
    # every column of the table is promised, and outputs only where they are shown (--json)
    words = {"STATUS": "status", "UPDATED": "when it last ran", "TOOK": "how long it took", "ENGINE": "engine",
             "ERROR": "error"}
    headers = status_table([], datetime_now()).headers
    assert set(headers) == {"STACK", *words}
    assert all(words[h] in status for h in words), status
    assert "outputs" not in status.split("--json")[0], status


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_status_json_holds_the_outputs_the_help_promises(dev: Path) -> None:
    doc = json.loads(ode(dev, "status", "--env", "dev", "--json").stdout)
    orders = next(s for s in doc["stacks"] if s["context"] == "orders")
    assert orders["outputs"]["orders-api"]["url"].startswith("https://")


# -- ode ci up outside a pull request -------------------------------------------------------------------------------


def test_ci_up_outside_a_pull_request_asks_which_environment(shop: Path) -> None:
    push = {"GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_EVENT_NAME": "push", "CI": "true"}
    done = ode(shop, "ci", "up", "--all", **push)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: not a pull request (this job builds branch 'main')"), line
    assert f"--branch main (environment {env_name_for_branch('main')})" in line and "--pr N" in line
    down = ode(shop, "ci", "down", **push)
    assert down.returncode == 2 and "which environment to destroy" in down.stderr
    listed = ode(shop, "env", "list", "--json")  # nothing was created, not even a registry
    assert listed.returncode == 2 and "no registry at" in listed.stderr, listed.stderr


def test_ci_up_with_a_branch_says_how_the_name_is_made(dev: Path) -> None:
    done = ode(dev, "ci", "up", "--branch", "feature/Add_Payments", "--contexts", "catalog")
    assert done.returncode == 0, done.stderr
    name = env_name_for_branch("feature/Add_Payments")
    assert json.loads(done.stdout)["env"] == name
    said = done.stderr.splitlines()
    assert f"environment {name}, from branch 'feature/Add_Payments' (--branch): the branch's name made short and " \
           f"valid, then {name.rsplit('-', 1)[1]!r}, a hash of the whole branch name that keeps two branches " \
           "apart" in said
    assert "deploying catalog (--contexts)" in said


def test_ci_up_finds_the_pull_request_of_a_pull_request_target_event(dev: Path, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    done = ode(dev, "ci", "up", "--contexts", "catalog", GITHUB_EVENT_NAME="pull_request_target",
               GITHUB_EVENT_PATH=str(event), GITHUB_REF="refs/heads/main")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["env"] == "pr-42" and "pull request 42, as CI names it" in done.stderr


def test_ci_up_without_a_base_to_compare_with_says_it_deploys_every_context(dev: Path) -> None:
    done = ode(dev, "ci", "up", "--pr", "3", "--reuse", "")
    assert done.returncode == 0, done.stderr
    assert "deploying every context (no --since, and CI names no pull request base to compare with" in done.stderr
    assert len(json.loads(done.stdout)["stacks"]) == 10


# -- did you mean ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["up", "--env", "dev"], ["plan", "--env", "dev", "--no-preview"], ["destroy", "--env", "dev", "--yes"],
    ["status", "--env", "dev"], ["outputs", "--env", "dev"], ["graph", "--env", "dev"], ["check", "--env", "dev"],
    ["refresh", "--env", "dev"], ["drift", "--env", "dev"], ["env", "create", "pr-5"], ["ci", "up", "--pr", "5"],
])
def test_a_mistyped_context_gets_the_closest_name(dev: Path, args: list[str]) -> None:
    done = ode(dev, *args, "--contexts", "ordrs")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == \
        "error: --contexts: no context 'ordrs' in the library; did you mean 'orders'?"
    assert "Traceback" not in done.stderr


def test_no_such_context_is_told_apart_from_one_not_in_this_environment(dev: Path) -> None:
    outside = ode(dev, "up", "--env", "dev", "--contexts", "reporting")  # a context of stage and prod only
    assert outside.returncode == 2
    assert "--contexts: context 'reporting' is not part of environment dev: its contract lists only stage, prod" \
        in outside.stderr
    assert ode(dev, "destroy", "--env", "dev", "--contexts", "catalog,orders", "--yes").returncode == 0
    gone = ode(dev, "status", "--env", "dev", "--contexts", "catalog")
    assert gone.returncode == 2 and "--contexts: context 'catalog' is not deployed in dev (deployed: " in gone.stderr
    nothing = ode(dev, "destroy", "--env", "dev", "--contexts", "zzz", "--yes")
    assert nothing.returncode == 2 and "no context 'zzz' in the library (it has: " in nothing.stderr
    reuse = ode(dev, "env", "create", "pr-9", "--contexts", "orders", "--reuse", "netwrk")
    assert reuse.returncode == 2 and "--reuse: no context 'netwrk' in the library; did you mean 'network'?" \
        in reuse.stderr


def test_a_mistyped_environment_gets_the_closest_name(dev: Path) -> None:
    for args in (["up", "--env", "dve"], ["status", "--env", "dve"], ["outputs", "--env", "dve"],
                 ["graph", "--env", "dve"], ["destroy", "--env", "dve", "--yes"]):
        done = ode(dev, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "unknown environment 'dve'; did you mean 'dev'?" in done.stderr, (args, done.stderr)
    path = ode(dev, "outputs", "--env", "dev", "ordrs.orders-api.url")
    assert path.returncode == 2 and "no deployed context 'ordrs'; did you mean 'orders'?" in path.stderr
    assert ode(dev, "env", "create", "pr-5", "--contexts", "catalog").returncode == 0
    for args in (["env", "destroy", "pr-55", "--yes"], ["env", "extend", "pr-55", "--ttl", "1h"],
                 ["ci", "down", "--name", "pr-55"]):
        done = ode(dev, *args)
        assert done.returncode == 2 and "no environment made on demand is named 'pr-55'; did you mean 'pr-5'?" in \
            done.stderr, (args, done.stderr)
    fault = ode(dev, "up", "--env", "dev", "--simulate-failure", "ordrs")
    assert fault.returncode == 2 and "no context 'ordrs' in contracts; did you mean 'orders'?" in fault.stderr


# -- colour ----------------------------------------------------------------------------------------------------------


def test_no_color_on_a_terminal_leaves_out_every_colour(dev: Path) -> None:
    status, text = on_terminal(dev, ["up", "--env", "dev", "--contexts", "ordrs"])
    assert status == 2 and "\x1b[31merror:" in text  # a terminal gets colour...
    for args, code in ((["up", "--env", "dev", "--contexts", "ordrs"], 2), (["status", "--env", "dev"], 0),
                       (["up", "--env", "dev", "--contexts", "catalog", "--yes"], 0),  # the live view, too
                       (["env", "create", "pr-1", "--contexts", "catalog"], 0)):
        status, text = on_terminal(dev, args, NO_COLOR="1")
        assert status == code, text
        assert not SGR.findall(text), (args, set(SGR.findall(text)))  # ...unless NO_COLOR says no


def test_force_color_colours_a_pipe_and_wins_over_no_color(dev: Path) -> None:
    for extra in ({"FORCE_COLOR": "1"}, {"FORCE_COLOR": "1", "NO_COLOR": "1"}):
        error = ode(dev, "up", "--env", "dev", "--contexts", "ordrs", **extra)
        assert "\x1b[31merror: --contexts" in error.stderr
        table = ode(dev, "status", "--env", "dev", **extra)
        assert SGR.search(table.stdout) and "dev.orders" in SGR.sub("", table.stdout)
        progress = ode(dev, "up", "--env", "dev", "--contexts", "catalog", **extra)
        assert "\x1b[32munchanged" in progress.stderr, progress.stderr
    piped = ode(dev, "status", "--env", "dev")
    assert not SGR.search(piped.stdout + piped.stderr)  # a pipe gets plain text by default


# -- quiet progress ----------------------------------------------------------------------------------------------------


def test_the_first_up_of_the_sample_writes_a_handful_of_lines_per_stack(shop: Path) -> None:
    done = ode(shop, "up", "--env", "dev", ODE_SIMULATE_PROGRAMS="1")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    stacks = len(_statuses(shop))
    print(f"first up of the sample: {len(lines)} lines on stderr for {stacks} stacks")
    assert stacks == 10 and len(lines) <= 3 * stacks + 4, done.stderr
    assert "urn:" not in done.stderr
    assert re.search(r"dev\.orders\s+succeeded \(\d+\.\ds\): new stack; \d+ created$", done.stderr, re.M)

    path = shop / "contracts" / "catalog.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["settings"]["memory_mb"] = 1024
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    verbose = ode(shop, "up", "--env", "dev", "--contexts", "catalog", "-v", ODE_SIMULATE_PROGRAMS="1")
    assert verbose.returncode == 0, verbose.stderr
    assert re.search(r"dev\.catalog\s+updated aws:lambda:Function catalog-", verbose.stderr), verbose.stderr
    assert "urn:" not in verbose.stderr


# -- ODE_ENV -----------------------------------------------------------------------------------------------------------


def test_ode_env_is_the_default_environment(dev: Path) -> None:
    url = ode(dev, "outputs", "orders.orders-api.url", ODE_ENV="dev")
    assert url.returncode == 0 and url.stdout.startswith("https://"), url.stderr
    assert json.loads(ode(dev, "graph", "--format", "json", ODE_ENV="dev").stdout)["env"] == "dev"
    assert json.loads(ode(dev, "graph", "--format", "json", "--env", "prod", ODE_ENV="dev").stdout)["env"] == "prod"
    assert ode(dev, "status", ODE_ENV="dev").returncode == 0
    for args in (["outputs"], ["graph"], ["up"]):
        bare = ode(dev, *args)
        assert bare.returncode == 2 and "Missing option '--env'" in bare.stderr and "ODE_ENV" in bare.stderr
    # a check is never narrowed by a default: validate still sees every environment
    assert "stage:" in ode(dev, "validate", ODE_ENV="dev").stdout


# -- human times and the PR comment's marker -------------------------------------------------------------------------


def test_ci_up_writes_human_expiry_times_and_a_marker_to_find_its_comment(dev: Path, tmp_path: Path) -> None:
    summary, comment = tmp_path / "summary.md", tmp_path / "comment.md"
    done = ode(dev, "ci", "up", "--pr", "7", "--contexts", "catalog", "--ttl", "2h", "--comment-file", str(comment),
               GITHUB_STEP_SUMMARY=str(summary))
    assert done.returncode == 0, done.stderr
    expires = json.loads(done.stdout)["environment"]["expires_at"]
    exact = expires[:10] + " " + expires[11:16] + " UTC"  # the record is UTC
    assert comment.read_text().splitlines()[0] == "<!-- ode:env=pr-7 -->"  # hidden: the job finds its comment
    for text in (comment.read_text(), summary.read_text()):
        assert f"**Expires:** in 2 h ({exact})" in text, text
    assert f"pr-7 expires in 2 h ({exact})" in done.stderr
    extended = ode(dev, "env", "extend", "pr-7", "--ttl", "5h")
    assert re.fullmatch(r"pr-7 now expires in 5 h \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)\n", extended.stdout)
    down = ode(dev, "ci", "down", "--pr", "7", "--comment-file", str(comment))
    assert down.returncode == 0 and comment.read_text().splitlines()[0] == "<!-- ode:env=pr-7 -->"
    assert "destroyed" in comment.read_text()


# -- shell completion ------------------------------------------------------------------------------------------------


def test_shell_completion_works_as_the_readme_says(shop: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'eval "$(_ODE_COMPLETE=bash_source ode)"' in readme
    command = shutil.which("ode", path=str(Path(sys.executable).parent)) or shutil.which("ode")
    assert command, "the ode console script is installed with the package"

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command], cwd=shop, capture_output=True, text=True, env=_env(**extra), timeout=60)

    script = run(_ODE_COMPLETE="bash_source")
    assert script.returncode == 0 and "_ode_completion()" in script.stdout

    def complete(words: str) -> list[str]:
        done = run(_ODE_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert complete("ode dest") == ["destroy"]
    assert complete("ode up --env d") == ["dev"]
    assert complete("ode up --contexts orders,ca") == ["orders,catalog"]


# -- ode ci: side outputs that cannot be written ------------------------------------------------------------------


def test_ci_up_with_unwritable_github_files_warns_once_each_and_keeps_the_deploys_status(dev: Path,
                                                                                          tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"  # a folder where a file is expected: unwritable for root too
    folder.mkdir()
    broken = {"GITHUB_OUTPUT": str(folder), "GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")}
    done = ode(dev, "ci", "up", "--pr", "8", "--contexts", "catalog", "--json", **broken)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deployed"] is True  # one document
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, done.stderr
    assert warnings[0].startswith(f"warning: GITHUB_OUTPUT {folder}: ") and warnings[0].endswith(": not written")
    assert warnings[1].startswith("warning: GITHUB_STEP_SUMMARY ")
    assert "Traceback" not in done.stderr

    failing = ode(dev, "ci", "up", "--pr", "9", "--contexts", "catalog", "--simulate-failure", "catalog", **broken)
    assert failing.returncode == 1 and json.loads(failing.stdout)["ok"] is False  # the deploy's status stands


def test_ci_up_with_a_comment_file_that_cannot_be_written_is_refused_first(dev: Path, tmp_path: Path) -> None:
    for bad in ("/nonexistent-folder/comment.md", str(tmp_path)):
        done = ode(dev, "ci", "up", "--pr", "10", "--contexts", "catalog", "--json", "--comment-file", bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        doc = json.loads(done.stdout)  # one document, the error
        assert doc["ok"] is False and doc["errors"][0]["message"].startswith(f"--comment-file {bad}: ")
    assert json.loads(ode(dev, "env", "list", "--json").stdout)["environments"] == []
