"""Names of environments made on demand, from git branches and pull requests.

An environment's name goes into stack names, physical resource names and tags, so it must be a valid context-style
name (lowercase letters, digits, '-', starting with a letter), short, stable (the same branch always gives the same
name) and distinct (two different branches never share one, even when they differ only in case or punctuation).
"""

from __future__ import annotations

import base64
import hashlib
import re

from .contracts.model import NAME_PATTERN
from .errors import UsageError

#: Longest environment name we make: leaves room in 63-character physical names for project, context and role.
MAX_ENV_NAME = 24
_HASH_CHARS = 7
_PREFIXES = ("refs/heads/", "refs/pull/", "origin/")


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii").lower()[:_HASH_CHARS]


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-{2,}", "-", slug)


def env_name_for_branch(branch: str, max_len: int = MAX_ENV_NAME) -> str:
    """A valid, stable, short environment name for a git branch: ``feature/Add_Payments`` ->
    ``feature-add-pa-xxxxxxx``: a readable slug, then a hash of the whole branch name that keeps two branches apart.
    """
    name = branch.strip()
    if not name:
        raise UsageError("a branch name is needed to name an environment")
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    slug = _slug(name) or "branch"
    if not slug[0].isalpha():
        slug = "b-" + slug
    room = max_len - _HASH_CHARS - 1
    slug = slug[:room].rstrip("-")
    return f"{slug}-{_digest(branch.strip())}"


def env_name_for_pull_request(number: int | str) -> str:
    """``pr-123`` for pull request 123."""
    text = str(number).strip().lstrip("#")
    if not text.isdigit():
        raise UsageError(f"pull request number {number!r} is not a number")
    return f"pr-{int(text)}"


def check_env_name(name: str) -> str:
    """``name`` itself when it can name an environment; ``UsageError`` saying why otherwise."""
    # fullmatch: with re.match, the pattern's '$' also matches before a trailing newline ("pr-1\n").
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise UsageError(
            f"{name!r} cannot name an environment: lowercase letters, digits and '-', starting with a letter, "
            "at most 32 characters (scripts/ephemeral_env.py --branch makes one from a branch name)"
        )
    return name
