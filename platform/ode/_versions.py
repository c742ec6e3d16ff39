"""Semantic versions and the version ranges a consumer may ask for.

Ranges follow the forms of the contract language: ``^1.2``, ``~1.2.3``, ``>=1.0,<2``, ``1.x``, ``*``, ``1.2.3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_PARTIAL = re.compile(r"^(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$")


@dataclass(frozen=True, order=True)
class Version:
    """A semantic version; pre-release versions sort before their release."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int, str] = (1, "")

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-pre][+build]``; raise ``ValueError`` naming the text otherwise."""
        return _parse_version(text)

    def __str__(self) -> str:
        pre = f"-{self.prerelease[1]}" if self.prerelease[0] == 0 else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}"


@lru_cache(maxsize=4096)
def _parse_version(text: str) -> Version:
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch, pre = match.groups()
    return Version(int(major), int(minor), int(patch), (0, pre) if pre else (1, ""))


def is_version(text: str) -> bool:
    """True when ``text`` is a semantic version."""
    return _VERSION.match(text.strip()) is not None


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of comparisons; a version satisfies the range when it satisfies every one."""

    text: str
    bounds: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse a range; raise ``ValueError`` with a readable reason when it is not one."""
        return _parse_range(text)

    def allows(self, version: Version | str) -> bool:
        """True when ``version`` lies in this range."""
        v = Version.parse(version) if isinstance(version, str) else version
        for op, bound in self.bounds:
            if op == ">=" and not v >= bound:
                return False
            if op == ">" and not v > bound:
                return False
            if op == "<" and not v < bound:
                return False
            if op == "<=" and not v <= bound:
                return False
            if op == "=" and v != bound:
                return False
        return True

    def __str__(self) -> str:
        return self.text


def _partial(text: str) -> tuple[int | None, int | None, int | None]:
    match = _PARTIAL.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a version or partial version")
    parts: list[int | None] = []
    wild = False
    for part in match.groups():
        if part is None or part in ("x", "X", "*") or wild:
            wild = True
            parts.append(None)
        else:
            parts.append(int(part))
    return parts[0], parts[1], parts[2]


def _expand(op: str, text: str) -> list[tuple[str, Version]]:
    """Turn one comparator into plain bounds."""
    if op in ("", "=") and is_version(text):
        return [("=", Version.parse(text))]
    if op in (">=", ">", "<", "<=") and is_version(text):
        return [(op, Version.parse(text))]
    major, minor, patch = _partial(text)
    if major is None:
        if op in ("", "=", ">=", "<="):
            return []
        raise ValueError(f"'{op}{text}' matches no version")
    low = Version(major, minor or 0, patch or 0, (0, "")) if op in ("", "=", "^", "~") else None
    if op == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0, (0, ""))
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0, (0, ""))
        else:
            high = Version(0, 0, patch + 1, (0, ""))
        return [(">=", Version(major, minor or 0, patch or 0)), ("<", high)]
    if op == "~":
        high = Version(major + 1, 0, 0, (0, "")) if minor is None else Version(major, minor + 1, 0, (0, ""))
        return [(">=", Version(major, minor or 0, patch or 0)), ("<", high)]
    if op in ("", "="):
        assert low is not None
        if minor is None:
            return [(">=", low), ("<", Version(major + 1, 0, 0, (0, "")))]
        if patch is None:
            return [(">=", low), ("<", Version(major, minor + 1, 0, (0, "")))]
        return [("=", Version(major, minor, patch))]
    base = Version(major, minor or 0, patch or 0)
    if op in (">=", "<"):
        return [(op, Version(major, minor or 0, patch or 0, (0, "")))]
    if op == ">":
        if minor is None:
            return [(">=", Version(major + 1, 0, 0, (0, "")))]
        if patch is None:
            return [(">=", Version(major, minor + 1, 0, (0, "")))]
        return [(">", base)]
    # op == "<="
    if minor is None:
        return [("<", Version(major + 1, 0, 0, (0, "")))]
    if patch is None:
        return [("<", Version(major, minor + 1, 0, (0, "")))]
    return [("<=", base)]


@lru_cache(maxsize=4096)
def _parse_range(text: str) -> VersionRange:
    stripped = text.strip()
    if not stripped:
        raise ValueError("an empty version range; use '*' for any version")
    bounds: list[tuple[str, Version]] = []
    for piece in re.split(r"\s*,\s*|\s+", stripped):
        if not piece:
            continue
        match = _COMPARATOR.match(piece)
        if not match:
            raise ValueError(f"{text!r} is not a version range")
        op, rest = match.group(1) or "", match.group(2).strip()
        try:
            bounds.extend(_expand(op, rest))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a version range: {exc}") from None
    return VersionRange(stripped, tuple(bounds))
