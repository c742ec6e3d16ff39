"""The team's own code directories (``settings.code``, ``settings.build``): inside the library's repository, no link
leading out of them, every file readable; the digest and the function's zip read exactly what lies inside."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.code import CodeDirectoryError, check_directory, code_root, directory_digest, files_of

from .cli_runner import ode
from .conftest import context, write_library


def api(code: str, **settings: Any) -> dict[str, Any]:
    return context("api", "serverless-api", {"items": {"kind": "http-api", "version": "1.0.0"}},
                   settings={"code": code, "handler": "app.handler", **settings})


def library(root: Path, code: str = "../services/api") -> Path:
    """A library under ``root/contracts`` whose one function runs the code in ``root/services/api``."""
    src = root / "services" / "api"
    src.mkdir(parents=True, exist_ok=True)
    (src / "app.py").write_text("def handler(event, context):\n    return event\n")
    return write_library(root / "contracts", [api(code)])


def refused(contracts: Path) -> str:
    """The one error line ``ode validate`` prints for ``contracts`` (exit 2)."""
    result = ode("validate", "--contracts", str(contracts))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("code", ["/etc", "../../../../../../..", "../.."])
def test_a_code_directory_outside_the_repository_is_refused_naming_the_field(tmp_path: Path, code: str) -> None:
    contracts = library(tmp_path / "lib", code)
    line = refused(contracts)
    assert "api.yaml" in line and "settings.code" in line
    assert "outside the library's repository" in line and str(tmp_path / "lib") in line


def test_a_build_directory_outside_the_repository_is_refused_too(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    web = context("web", "container-service", {"site": {"kind": "http-api", "version": "1.0.0"}},
                  settings={"build": str(outside)})
    line = refused(write_library(tmp_path / "lib" / "contracts", [web]))
    assert "settings.build" in line and "outside the library's repository" in line


def test_in_a_git_repository_the_repository_is_the_bound(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    contracts = library(repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    assert code_root(contracts) == repo.resolve()
    assert ode("validate", "--contracts", str(contracts)).exit_code == 0
    # A sibling of the repository is outside it, though it is beside the contracts folder's parent.
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    write_library(contracts, [api("../../sibling")])
    line = refused(contracts)
    assert "outside the library's repository" in line and str(repo.resolve()) in line


def test_a_code_directory_that_is_a_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib", "../services/linked")
    (tmp_path / "lib" / "services" / "linked").symlink_to(tmp_path)  # a link whose target lies outside
    line = refused(contracts)
    assert "settings.code" in line and "outside the library's repository" in line


def test_a_link_leading_out_of_the_code_directory_is_refused_naming_the_link(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib")
    secret = tmp_path / "credentials"
    secret.write_text("[default]\naws_secret_access_key = not-for-a-zip\n")
    src = tmp_path / "lib" / "services" / "api"
    (src / "conf").mkdir()
    (src / "conf" / "aws").symlink_to(secret)
    line = refused(contracts)
    assert "settings.code" in line and f"../services/api/conf/aws is a symbolic link to {secret}" in line
    assert "outside the code directory" in line
    # The digest and the function's zip refuse it the same way, and never read what it leads to.
    with pytest.raises(CodeDirectoryError, match="conf/aws is a symbolic link") as digest:
        directory_digest(src)
    assert digest.value.inside == "conf/aws"
    from components.function import code

    with pytest.raises(CodeDirectoryError, match="conf/aws"):
        code("serverless_api", src)
    # A plan fails the same way, in one line, before any program runs.
    plan = ode("plan", "--env", "dev", "--contracts", str(contracts), "--engine", "simulated", "--state-dir",
               str(tmp_path / "state"))
    assert plan.exit_code == 2 and "conf/aws is a symbolic link" in plan.stderr


def test_a_link_to_a_directory_outside_is_refused_too(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib")
    (tmp_path / "lib" / "services" / "api" / "home").symlink_to(Path.home())
    assert "api/home is a symbolic link to" in refused(contracts)


def test_links_inside_the_code_directory_are_read_as_their_files(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib")
    src = tmp_path / "lib" / "services" / "api"
    (src / "alias.py").symlink_to("app.py")
    (src / "lib").mkdir()
    (src / "vendored").symlink_to("lib", target_is_directory=True)
    assert ode("validate", "--contracts", str(contracts)).exit_code == 0
    names = [p.relative_to(src).as_posix() for p in files_of(src)]
    assert names == ["alias.py", "app.py"]  # a linked directory is left as a link, as Docker leaves it
    before = directory_digest(src)
    (src / "app.py").write_text("def handler(event, context):\n    return 1\n")
    assert directory_digest(src) != before  # the link is read through: its file's change is seen


def test_a_dangling_link_is_refused_naming_it(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib")
    (tmp_path / "lib" / "services" / "api" / "gone.py").symlink_to("nowhere.py")
    assert "api/gone.py is a symbolic link to nowhere.py, which does not exist" in refused(contracts)


def test_an_unreadable_file_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contracts = library(tmp_path / "lib")
    src = tmp_path / "lib" / "services" / "api"
    locked = src / "private.key"
    locked.write_text("x")
    real_open = open

    def refusing_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    # Root reads every file whatever its mode: the refusal a user would get is planted where the file is opened.
    monkeypatch.setattr("components.code.open", refusing_open, raising=False)
    line = refused(contracts)
    assert "settings.code" in line and "api/private.key cannot be read (Permission denied)" in line
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: refusing_open(self) if self == locked else real_read(self))
    with pytest.raises(CodeDirectoryError, match=r"private\.key cannot be read \(Permission denied\)"):
        directory_digest(src)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission_is_one_error_line(tmp_path: Path) -> None:
    contracts = library(tmp_path / "lib")
    locked = tmp_path / "lib" / "services" / "api" / "private.key"
    locked.write_text("x")
    locked.chmod(0)
    try:
        assert "private.key cannot be read" in refused(contracts)
    finally:
        locked.chmod(0o600)


def test_a_fifo_in_the_code_directory_is_no_code_and_never_blocks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("x = 1\n")
    os.mkfifo(src / "pipe")
    assert [p.name for p in files_of(src)] == ["app.py"]
    check_directory(src)
    assert len(directory_digest(src)) == 16


def _former_digest(root: Path) -> str:
    """The digest as it was computed before links were checked: a plain directory must keep its fingerprint, or
    every stack with code of its own would redeploy for nothing."""
    ignored = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules",
               ".venv"}
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(p in ignored for p in rel) or path.suffix == ".pyc" or not path.is_file():
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def test_the_digest_of_a_plain_directory_is_what_it_was(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel in ("a.py", "a/b.py", "a.txt", "B/c.json", "node_modules/x.js", "pkg/__pycache__/m.pyc", "pkg/m.py",
                "z/.hidden"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    assert directory_digest(src) == _former_digest(src)
    assert directory_digest(tmp_path / "missing") == "missing"


def test_a_link_planted_after_the_library_was_read_fails_the_fingerprint_in_one_line(tmp_path: Path) -> None:
    from ode import load_library
    from ode.errors import OdeError
    from ode.execution.planning import service_code_digest

    contracts = library(tmp_path / "lib")
    loaded = load_library(contracts, "dev")
    assert len(service_code_digest(loaded, "api", "dev")) == 16
    (tmp_path / "lib" / "services" / "api" / "creds").symlink_to(tmp_path / "secret")
    with pytest.raises(OdeError, match=r"api\.yaml: settings: api/creds is a symbolic link to .*outside the code"):
        service_code_digest(loaded, "api", "dev")
