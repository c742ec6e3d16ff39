"""The pulumi engine: each stack run by the ``pulumi`` CLI through Pulumi's Automation API.

Every stack gets its own workspace directory (``<state dir>/workspaces/<env>.<context>/``) holding a generated
``Pulumi.yaml`` and ``__main__.py`` that run :func:`ode.program.main` in this Python environment, so stacks run in
parallel without sharing files. State goes to the file backend under the state dir by default (``ODE_BACKEND_URL``
for any other backend), secrets are encrypted with a passphrase (``PULUMI_CONFIG_PASSPHRASE``, or one generated once
into ``<state dir>/passphrase`` with mode 0600). The producers' outputs reach a stack as its config; secret ones as
secret config.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..contracts import ContractLibrary
from ._base import (
    CliNotFoundError,
    ConcurrentUpdateError,
    EngineError,
    ProgramError,
    ProgressCallback,
    StackNotFoundError,
    StackResult,
    StackSpec,
)

_INSTALL_LOCK = threading.Lock()
_INSTALL_TRIED: list[bool] = []

#: Set to 1 to let the engine download a ``pulumi`` CLI when none is found (it never does so unasked).
INSTALL_VARIABLE = "ODE_INSTALL_PULUMI"


def _cli_places() -> list[Path]:
    """Where a CLI is looked for beside PATH: the installer script's ``~/.pulumi/bin`` and the versioned folders
    ``PulumiCommand.install`` uses (``~/.pulumi/versions/<version>/bin``), newest first."""
    home = Path.home() / ".pulumi"
    versions = sorted((home / "versions").glob("*/bin/pulumi"), key=lambda p: _version_key(p.parent.parent.name),
                      reverse=True)
    return [home / "bin" / "pulumi", *versions]


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in text.lstrip("v").split("."))


def _find_cli() -> str | None:
    return shutil.which("pulumi") or next((str(p) for p in _cli_places() if p.is_file()), None)


def _yaml_string(value: str) -> str:
    """A YAML scalar that stays a string whatever it holds (a path with ':' or '#', a URL)."""
    return json.dumps(value)


class PulumiEngine:
    """Runs stacks with the ``pulumi`` CLI. Raises :class:`CliNotFoundError` when no CLI is found or installable."""

    name = "pulumi"

    def __init__(self, library: ContractLibrary, state_dir: str | Path, *, backend_url: str | None = None,
                 passphrase: str | None = None, env_vars: dict[str, str] | None = None):
        self.library = library
        self.state_dir = Path(state_dir).resolve()
        self.backend_url = backend_url or os.environ.get("ODE_BACKEND_URL") or (
            f"file://{self.state_dir / 'pulumi'}")
        if self.backend_url.startswith("file://"):
            Path(self.backend_url[len("file://"):]).mkdir(parents=True, exist_ok=True)
        self._passphrase = passphrase or os.environ.get("PULUMI_CONFIG_PASSPHRASE") or self._stored_passphrase()
        self.env_vars = dict(env_vars or {})
        self.command = self._command()
        #: The policy gate (``ode.cli_check.PolicyGate``): checks a stack before the CLI sees it, and gives the CLI
        #: the policy pack to run as well.
        self.gate: Any = None

    @staticmethod
    def available() -> bool:
        """Whether a ``pulumi`` CLI can be found (on PATH or in ``~/.pulumi/bin``)."""
        return _find_cli() is not None

    def _stored_passphrase(self) -> str:
        path = self.state_dir / "passphrase"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # Written whole under another name, then linked into place: of several processes racing here, one
            # link wins and the others read the winner's complete file (never a FileExistsError, never half a file).
            tmp = path.with_name(f".passphrase.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip()

    def _command(self) -> Any:
        from pulumi import automation as auto

        found = _find_cli()
        if found is not None:
            return auto.PulumiCommand(root=str(Path(found).parent.parent) if Path(found).parent.name == "bin"
                                      else None)
        if os.environ.get(INSTALL_VARIABLE) not in ("1", "true", "yes"):
            raise CliNotFoundError(
                "no `pulumi` CLI on PATH or in ~/.pulumi: install it (https://www.pulumi.com/docs/install/), set "
                f"{INSTALL_VARIABLE}=1 to let ode download it, or use --engine simulated")
        with _INSTALL_LOCK:  # try the installer once per process
            if not _INSTALL_TRIED:
                _INSTALL_TRIED.append(True)
                # Said before it happens: a download from get.pulumi.com into ~/.pulumi/versions/<version>.
                print(f"engine: no pulumi CLI found; downloading one ({INSTALL_VARIABLE}=1) into "
                      "~/.pulumi/versions/", file=sys.stderr, flush=True)
                try:
                    return auto.PulumiCommand.install()
                except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                    raise CliNotFoundError(
                        f"no `pulumi` CLI on PATH, and installing one failed ({reason}); install it "
                        "(https://www.pulumi.com/docs/install/) or use --engine simulated") from None
        raise CliNotFoundError("no `pulumi` CLI on PATH: install it (https://www.pulumi.com/docs/install/) or use "
                               "--engine simulated")

    # -- workspaces ----------------------------------------------------------------------------------------------

    def workspace_dir(self, spec: StackSpec) -> Path:
        """The stack's own workspace: a generated Pulumi project that runs ``ode.program.main``."""
        folder = self.state_dir / "workspaces" / spec.stack_name
        folder.mkdir(parents=True, exist_ok=True)
        # The program runs in this Python environment: a virtualenv's path when ode runs in one (quoted, it may
        # hold any character); outside one, no virtualenv at all and PULUMI_PYTHON_CMD names this interpreter.
        options = "    toolchain: pip\n"
        if sys.prefix != sys.base_prefix:
            options += f"    virtualenv: {_yaml_string(sys.prefix)}\n"
        (folder / "Pulumi.yaml").write_text(
            f"name: {_yaml_string(spec.project)}\n"
            "description: generated by ode for one bounded context\n"
            "runtime:\n  name: python\n  options:\n" + options +
            f"backend:\n  url: {_yaml_string(self.backend_url)}\n")
        (folder / "__main__.py").write_text("from ode.program import main\n\nmain()\n")
        return folder

    def environment(self) -> dict[str, str]:
        """What the CLI runs with: the passphrase, the backend, no update checks, and any extra variables."""
        return {"PULUMI_CONFIG_PASSPHRASE": self._passphrase, "PULUMI_BACKEND_URL": self.backend_url,
                "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_PYTHON_CMD": sys.executable, **self.env_vars}

    def _stack(self, spec: StackSpec, create: bool = True) -> Any:
        from pulumi import automation as auto

        from ..program import stack_config

        options = auto.LocalWorkspaceOptions(work_dir=str(self.workspace_dir(spec)), pulumi_command=self.command,
                                             env_vars=self.environment(), secrets_provider="passphrase")
        try:
            if create:
                stack = auto.create_or_select_stack(stack_name=spec.stack_name, work_dir=options.work_dir,
                                                    opts=options)
            else:
                stack = auto.select_stack(stack_name=spec.stack_name, work_dir=options.work_dir, opts=options)
        except Exception as exc:  # noqa: BLE001 - classified in one place
            raise classify(spec.stack_name, exc) from None
        plain, secret = stack_config(spec)
        values = {k: auto.ConfigValue(value=v) for k, v in plain.items()}
        values.update({k: auto.ConfigValue(value=v, secret=True) for k, v in secret.items()})
        try:
            stack.set_all_config(values)
            # Exactly what ode wants, every run: a key a previous run set and this one does not (a local target's
            # endpoint, secret upstream keys that are gone) would otherwise stay and steer the program.
            stale = sorted(set(stack.get_all_config()) - set(values))
            if stale:
                stack.remove_all_config(stale)
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc) from None
        return stack

    # -- operations ----------------------------------------------------------------------------------------------

    def _run(self, spec: StackSpec, operation: str, progress: ProgressCallback | None) -> StackResult:
        started = time.perf_counter()

        def output(line: str) -> None:
            if progress and line.strip():
                progress(spec.stack_name, line.rstrip())

        packs: dict[str, Any] = {}
        if self.gate is not None and operation in ("up", "preview"):
            self.gate(spec, None)
            packs = self.gate.pulumi_options(spec)
        stack = self._stack(spec, create=operation in ("up", "preview"))
        try:
            outputs = None
            if operation == "up":
                result = stack.up(on_output=output, color="never", **packs)
                changes = dict(result.summary.resource_changes or {})
                outputs = result.outputs  # up already read them: no second pair of CLI calls
            elif operation == "preview":
                result = stack.preview(on_output=output, color="never", **packs)
                changes = {str(k): v for k, v in (result.change_summary or {}).items()}
            elif operation == "refresh":
                result = stack.refresh(on_output=output, color="never")
                changes = dict(result.summary.resource_changes or {})
            else:
                result = stack.destroy(on_output=output, color="never")
                changes = dict(result.summary.resource_changes or {})
            if outputs is None:
                outputs = stack.outputs() if operation != "destroy" else {}
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc) from None
        values = {k: v.value for k, v in outputs.items()}
        hidden = frozenset(k for k, v in outputs.items() if v.secret)
        return StackResult(stack=spec.stack_name, operation=operation, outputs=values,  # type: ignore[arg-type]
                           secret_outputs=hidden, changes=changes, simulated=False,
                           duration_s=time.perf_counter() - started)

    def preview(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "preview", progress)

    def up(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "up", progress)

    def refresh(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "refresh", progress)

    def destroy(self, spec: StackSpec, progress: ProgressCallback | None = None) -> StackResult:
        return self._run(spec, "destroy", progress)

    def outputs(self, spec: StackSpec) -> dict[str, Any]:
        stack = self._stack(spec, create=False)
        try:
            return {k: v.value for k, v in stack.outputs().items()}
        except Exception as exc:  # noqa: BLE001
            raise classify(spec.stack_name, exc) from None


def classify(stack: str, exc: BaseException) -> Exception:
    """One place that turns what the Automation API raised into the engine's errors."""
    from pulumi import automation as auto

    if isinstance(exc, FileNotFoundError):
        return CliNotFoundError(f"{stack}: the pulumi CLI could not be run ({exc})")
    if isinstance(exc, auto.ConcurrentUpdateError):
        return ConcurrentUpdateError(stack, "another update of this stack is running", str(exc))
    if isinstance(exc, auto.StackNotFoundError):
        return StackNotFoundError(stack, "no such stack", str(exc))
    if isinstance(exc, auto.CommandError):
        text = str(exc)
        if "error: Program failed" in text or "Traceback" in text or "ValueError:" in text:
            return ProgramError(stack, "the program failed", text)
        return EngineError(stack, "pulumi failed", text)
    return EngineError(stack, f"{type(exc).__name__}: {exc}")
