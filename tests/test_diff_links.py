"""``ode diff --since REF`` when the library at that ref holds symbolic links: followed inside the repository, one
line and exit 2 otherwise, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .cli_runner import Ran, ode
from .conftest import committed_sample, git


def _shared_environments(root: Path) -> None:
    (root / "shared").mkdir()
    (root / "contracts" / "environments.yaml").rename(root / "shared" / "environments.yaml")
    (root / "contracts" / "environments.yaml").symlink_to("../shared/environments.yaml")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of the sample library whose environments.yaml is a link to a shared file."""
    return committed_sample(tmp_path / "repo", _shared_environments)


def diff(repo: Path, ref: str = "HEAD") -> Ran:
    return ode("diff", "--since", ref, "--format", "json", "--contracts", str(repo / "contracts"))


def commit_link(repo: Path, name: str, target: str) -> None:
    """Commit ``contracts/<name>`` as a link to ``target``, then take it out of the working tree again."""
    link = repo / "contracts" / name
    link.symlink_to(target)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"link {name}")
    link.unlink()


def test_a_linked_environments_file_is_read_not_reported_missing(repo: Path) -> None:
    result = diff(repo)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    # A change behind the link at the ref is seen like any other.
    orders = repo / "contracts" / "orders.yaml"
    orders.write_text(orders.read_text().replace("OrderPlaced:", "OrderMade:"))
    changed = json.loads(diff(repo).stdout)
    assert any(i["interface"] == "OrderPlaced" and i["verdict"] == "error" for i in changed["interfaces"])


def test_a_linked_contract_inside_the_repository_is_followed(repo: Path) -> None:
    (repo / "drafts").mkdir()
    shutil.copy(repo / "contracts" / "orders.yaml", repo / "drafts" / "orders.yaml")
    (repo / "contracts" / "orders.yaml").unlink()
    (repo / "contracts" / "orders.yaml").symlink_to("../drafts/orders.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "orders from drafts")
    result = diff(repo)
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True, result.output


@pytest.mark.parametrize(("target", "says"), [
    ("/etc/passwd", "is a symbolic link to /etc/passwd, outside the repository"),
    ("../../outside.yaml", "is a symbolic link to ../../outside.yaml, outside the repository"),
    ("nowhere.yaml", "is a symbolic link to nowhere.yaml, which does not exist there"),
    ("loop.yaml", "is a symbolic link to loop.yaml, which leads round in a loop of links"),
])
def test_a_link_the_library_cannot_be_read_through_is_one_line(repo: Path, target: str, says: str) -> None:
    name = "loop.yaml" if target == "loop.yaml" else "linked.yaml"
    commit_link(repo, name, target)
    result = diff(repo)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"contracts/{name} {says}" in lines[0], result.stderr
    assert result.stdout == ""


def test_a_contract_too_large_at_the_ref_is_one_line(repo: Path) -> None:
    (repo / "contracts" / "huge.yaml").write_bytes(b"# " + b"x" * (8 * 1024 * 1024) + b"\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "huge")
    (repo / "contracts" / "huge.yaml").unlink()
    result = diff(repo)
    assert result.exit_code == 2 and "contracts/huge.yaml is 8388611 bytes there, larger than a contract may be" \
        in result.stderr


def test_the_teams_code_under_the_library_is_not_read_at_the_ref(repo: Path) -> None:
    # A link in a code directory is not the library's: diff reads the contracts only.
    commit_link(repo, "services/orders/src/creds", "/etc/passwd")
    assert diff(repo).exit_code == 0


def test_a_file_at_a_ref_is_read_through_a_link_inside_the_repository_only(repo: Path) -> None:
    from ode import git as ode_git

    text = ode_git.file_at(repo, "HEAD", "contracts/environments.yaml")
    assert text == (repo / "shared" / "environments.yaml").read_text()  # the file, not the link's target path
    commit_link(repo, "outside.yaml", "/etc/hostname")
    assert ode_git.file_at(repo, "HEAD", "contracts/outside.yaml") is None
    assert ode_git.file_at(repo, "HEAD", "contracts/nothing.yaml") is None
