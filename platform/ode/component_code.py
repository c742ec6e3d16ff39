"""Which component kinds a file of code belongs to, and a digest of the code each kind runs.

``components/<kind>.py`` and ``components/handlers/<kind>/`` belong to that kind; any other file under
``components/`` (shared code) and the program itself belong to every kind. ``ode affected`` maps changed files this
way, and a stack's fingerprint covers its kind's code this way, so the two always agree.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import components
from components.kinds import KINDS

#: Files outside components/ whose change redeploys every context: the program that every stack runs.
PROGRAM_FILES = ("platform/ode/program.py", "Pulumi.yaml", "__main__.py")


def kinds_of_code(path: str, kinds: set[str]) -> set[str] | None:
    """The component kinds a changed file belongs to; None when it is no component code at all."""
    if path in PROGRAM_FILES:
        return set(kinds)
    parts = Path(path).parts
    if not parts or parts[0] != "components":
        return None
    module = {k.replace("-", "_"): k for k in kinds}
    if len(parts) >= 3 and parts[1] == "handlers" and parts[2] in module:
        return {module[parts[2]]}
    if len(parts) == 2 and Path(parts[1]).stem in module:
        return {module[Path(parts[1]).stem]}
    if parts[-1].endswith((".md", ".txt")) or "tests" in parts:
        return set()
    return set(kinds)


@cache
def code_digests() -> dict[str, str]:
    """A digest of the code each component kind runs: its module, its handlers, the shared component code and the
    program. Files are mapped to kinds exactly as ``ode affected`` maps them."""
    kinds = set(KINDS)
    root = Path(components.__file__).resolve().parent
    program = Path(__file__).resolve().parent / "program.py"
    hashes = {k: hashlib.sha256() for k in kinds}
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix != ".pyc")
    named = [(f"components/{p.relative_to(root).as_posix()}", p) for p in files]
    if program.exists():
        named.append(("platform/ode/program.py", program))
    for rel, path in named:
        touched = kinds_of_code(rel, kinds) or set()
        if not touched:
            continue
        blob = rel.encode() + b"\0" + path.read_bytes()
        for kind in touched:
            hashes[kind].update(blob)
    return {k: h.hexdigest()[:16] for k, h in hashes.items()}
