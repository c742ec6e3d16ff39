"""Environment names from branches: valid, stable, short, distinct."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ode.contracts import NAME_PATTERN
from ode.errors import UsageError
from ode.naming import MAX_ENV_NAME, check_env_name, env_name_for_branch, env_name_for_pull_request

branches = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=120
).filter(lambda s: s.strip() != "")


def test_readable_and_stable() -> None:
    name = env_name_for_branch("feature/Add_Payments")
    assert name.startswith("feature-add-pa")
    assert name == env_name_for_branch("feature/Add_Payments")
    assert env_name_for_branch("refs/heads/main").startswith("main-")


def test_case_and_punctuation_do_not_collide() -> None:
    names = {env_name_for_branch(b) for b in ["feature/Add_Payments", "feature/add-payments",
                                                "Feature/Add-Payments", "feature/add_payments"]}
    assert len(names) == 4


@settings(max_examples=300)
@given(branches)
def test_every_branch_gives_a_valid_short_name(branch: str) -> None:
    name = env_name_for_branch(branch)
    assert re.match(NAME_PATTERN, name), name
    assert len(name) <= MAX_ENV_NAME
    assert check_env_name(name) == name


@settings(max_examples=200)
@given(st.lists(branches, min_size=2, max_size=40, unique_by=str.strip))
def test_different_branches_never_share_a_name(names: list[str]) -> None:
    assert len({env_name_for_branch(b) for b in names}) == len(names)


def test_pull_requests_and_bad_names() -> None:
    assert env_name_for_pull_request("#42") == "pr-42"
    with pytest.raises(UsageError):
        env_name_for_pull_request("abc")
    with pytest.raises(UsageError, match="cannot name an environment"):
        check_env_name("Feature/X")
    with pytest.raises(UsageError):
        env_name_for_branch("   ")


contexts = st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True)
roles = st.sampled_from(["handler", "table-orders-table", "bucket-exports", "dlq", "api", "role", "worker-queue"])


@settings(max_examples=300)
@given(branches, contexts, roles)
def test_physical_names_from_branches_fit_every_aws_limit(branch: str, context: str, role: str) -> None:
    from components.common import LIMITS, Identity

    ident = Identity(project="shop", env=env_name_for_branch(branch), context=context, owner="team",
                     account="111111111111", region="us-east-1")
    for kind, limit in LIMITS.items():
        name = ident.name(role, kind)
        assert len(name) <= limit, (kind, name)
        assert name == ident.name(role, kind)  # stable
    assert re.fullmatch(r"[a-z0-9-]{3,63}", ident.name(role, "s3")), "S3 names: lowercase, digits, '-'"


@settings(max_examples=200)
@given(st.lists(branches, min_size=2, max_size=20, unique_by=str.strip), contexts, roles)
def test_different_branches_never_share_a_physical_name(names: list[str], context: str, role: str) -> None:
    from components.common import LIMITS, Identity

    for kind in LIMITS:
        physical = {Identity(project="shop", env=env_name_for_branch(b), context=context, owner="t",
                             account="1", region="r").name(role, kind) for b in names}
        assert len(physical) == len(names), kind
