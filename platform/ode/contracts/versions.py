"""Semantic versions and the version ranges a consumer may ask for, on the ``node-semver`` library.

Ranges follow the forms of the contract language: ``^1.2``, ``~1.2.3``, ``>=1.0,<2``, ``1.x``, ``*``, ``1.2.3``
(a comma and a space both mean "and"; ``||`` means "or", as in npm). Ordering and range matching are the library's
(SemVer 2.0: ``1.0.0-rc.2 < 1.0.0-rc.10 < 1.0.0``); this module only keeps the contract language's spelling and
its messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, total_ordering

import nodesemver

# SemVer 2.0's own grammar: node-semver alone would also take "v1.2.3" and " 1.2.3", which a contract must not.
_VERSION = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_LOOSE = False  # node-semver's strict mode everywhere


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; pre-release versions sort before their release, numerically where numeric."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-pre][+build]``; raise ``ValueError`` naming the text otherwise."""
        return _parse_version(text)

    @property
    def _sv(self) -> nodesemver.SemVer:
        return nodesemver.make_semver(self.text, _LOOSE)

    @property
    def major(self) -> int:
        return int(self._sv.major)

    @property
    def minor(self) -> int:
        return int(self._sv.minor)

    @property
    def patch(self) -> int:
        return int(self._sv.patch)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and nodesemver.compare(self.text, other.text, _LOOSE) == 0

    def __lt__(self, other: Version) -> bool:
        return bool(nodesemver.compare(self.text, other.text, _LOOSE) < 0)

    def __hash__(self) -> int:
        return hash(self.text.split("+", 1)[0])

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=4096)
def _parse_version(text: str) -> Version:
    if not isinstance(text, str) or not _VERSION.match(text):
        raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    return Version(text)


def is_version(text: str) -> bool:
    """True when ``text`` is a semantic version."""
    return isinstance(text, str) and _VERSION.match(text) is not None


@dataclass(frozen=True)
class VersionRange:
    """A range as written in a contract; :meth:`allows` asks the library."""

    text: str
    npm: str

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse a range; raise ``ValueError`` with a readable reason when it is not one."""
        return _parse_range(text)

    def allows(self, version: Version | str) -> bool:
        """True when ``version`` lies in this range."""
        v = version.text if isinstance(version, Version) else Version.parse(version).text
        return _satisfies(self.npm, v)

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=65536)
def _satisfies(npm: str, version: str) -> bool:
    # A library asks the same few (range, version) pairs thousands of times; the library re-parses each time.
    return bool(nodesemver.satisfies(version, npm, _LOOSE))


_RANGE_CHARS = re.compile(r"^[0-9A-Za-z.*^~<>=|, +-]+$")


@lru_cache(maxsize=4096)
def _parse_range(text: str) -> VersionRange:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a version range")
    stripped = text.strip()
    if not stripped:
        raise ValueError("an empty version range; use '*' for any version")
    if not _RANGE_CHARS.match(stripped):
        raise ValueError(f"{text!r} is not a version range (forms: ^1.2, ~1.2.3, >=1.0,<2, 1.x, *)")
    # The contract language writes "and" with a comma; npm writes it with a space.
    npm = re.sub(r"\s*,\s*", " ", stripped)
    try:
        parsed = nodesemver.make_range(npm, _LOOSE)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not a version range (forms: ^1.2, ~1.2.3, >=1.0,<2, 1.x, *): {exc}") from None
    if parsed is None:
        raise ValueError(f"{text!r} is not a version range (forms: ^1.2, ~1.2.3, >=1.0,<2, 1.x, *)")
    return VersionRange(stripped, npm)
