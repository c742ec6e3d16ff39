"""The layout keeps its promises: dependencies point one way, protocols stay apart from implementations, private
modules stay private, and ``import ode`` / ``ode --help`` load no heavy library.

Every import of ``platform/ode`` is read from the source (module level, inside functions, under ``TYPE_CHECKING``,
relative and absolute), so that an import hidden in a function counts as much as one at the top. Each check is also
run on a small planted package that breaks it, so that a check that could never fail would be seen.
"""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "platform" / "ode"

#: Modules that implement a protocol: the engines and the registry backends (and the mock runtime the simulated
#: engine runs programs in).
IMPLEMENTATIONS = frozenset({"ode.engines.pulumi", "ode.engines.simulated", "ode.engines._mocks",
                             "ode.registry.sqlite", "ode.registry.dynamodb", "ode.executors.dask",
                             "ode.executors.codebuild", "ode.executors.local"})

#: Libraries that ``import ode`` and ``ode --help`` must not load.
HEAVY = ("boto3", "botocore", "networkx", "pydantic", "pulumi", "pulumi_aws", "yaml", "yaml_rs", "rich", "dask",
         "distributed")

#: Test helpers that may import a private module of ode, and why.
PRIVATE_ALLOWED = {
    # it replays deployments with the mock runtime's own classes, and is kept as it is by its owners
    "aws_deploy.py": {"ode.engines._mocks"},
}


# -- reading the imports ---------------------------------------------------------------------------------------------


def module_names(source: Path, package: str = "ode") -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``source`` (a package is its ``__init__``)."""
    found = {}
    for path in sorted(source.rglob("*.py")):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that the module ``name`` (file ``path``) imports, wherever in it."""
    modules = set(known)
    here = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule where there is one, else a name of pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import ode.contracts.model.x`: the module part
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(source: Path, package: str = "ode") -> dict[str, set[str]]:
    """module -> the modules of the same package it imports."""
    files = module_names(source, package)
    return {name: imports_of(name, path, files) for name, path in files.items()}


def unit(module: str) -> str:
    """The top-level package or module of ``ode`` a module belongs to (``ode.contracts.model`` -> ``contracts``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph with every module folded into its top-level package."""
    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        folded.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    return folded


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (first node repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(reversed(exc.args[1]))
    return None


def protocol_modules(source: Path, package: str = "ode") -> set[str]:
    """Modules that define a ``typing.Protocol``."""
    found = set()
    for name, path in module_names(source, package).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    (isinstance(b, ast.Name) and b.id == "Protocol") or
                    (isinstance(b, ast.Attribute) and b.attr == "Protocol") for b in node.bases):
                found.add(name)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def protocols_reaching_implementations(graph: dict[str, set[str]], protocols: set[str],
                                       implementations: Iterable[str]) -> dict[str, set[str]]:
    """protocol module -> the implementations it imports, directly or through other modules."""
    found = {}
    for protocol in protocols:
        reached = reachable(graph, protocol) & set(implementations)
        if reached:
            found[protocol] = reached
    return found


def private_imports_from_outside(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, private module) where a ``_module`` is imported by a module outside its own package."""
    bad = []
    for module, targets in graph.items():
        for target in targets:
            owner, _, last = target.rpartition(".")
            inside = module == owner or module.startswith(owner + ".")
            if last.startswith("_") and not last.startswith("__") and not inside:
                bad.append((module, target))
    return sorted(bad)


# -- the real tree ---------------------------------------------------------------------------------------------------


GRAPH = import_graph(SOURCE)


def test_the_reader_sees_imports_in_functions_type_checking_and_relative_forms() -> None:
    # Known imports of each form, so that a reader that missed one would fail here first.
    assert "ode.workspace" in GRAPH["ode.cli.core"]  # inside a function and under TYPE_CHECKING
    assert "ode.engines.pulumi" in GRAPH["ode.engines.factory"]  # inside a function, relative
    assert "ode.git" in GRAPH["ode.authoring.evolution"]  # `from .. import git`
    assert "ode.cli.core" in GRAPH["ode.cli.__main__"]  # absolute
    assert len(GRAPH) > 60


def test_no_import_cycle_between_modules() -> None:
    assert cycle(GRAPH) is None, " -> ".join(cycle(GRAPH) or [])


def test_no_import_cycle_between_packages() -> None:
    packages = package_graph(GRAPH)
    assert cycle(packages) is None, " -> ".join(cycle(packages) or [])


def test_dependencies_point_from_the_cli_down_to_the_contracts() -> None:
    packages = package_graph(GRAPH)
    order = ["cli", "workspace", "execution", "contracts"]
    for higher, lower in zip(order, order[1:]):
        assert higher not in reachable(packages, lower), f"{lower} reaches {higher}"
    assert "graph" not in reachable(packages, "contracts")
    for room in ("engines", "registry", "graph", "policy", "execution"):
        assert {"cli", "workspace"}.isdisjoint(reachable(packages, room)), room
    assert "execution" not in reachable(packages, "policy") | reachable(packages, "engines")


def test_a_protocol_never_imports_an_implementation() -> None:
    protocols = protocol_modules(SOURCE)
    assert {"ode.engines.protocol", "ode.registry.protocol", "ode.execution.events"} <= protocols
    assert IMPLEMENTATIONS <= set(GRAPH)
    assert protocols_reaching_implementations(GRAPH, protocols, IMPLEMENTATIONS) == {}


def test_no_private_module_is_imported_from_outside_its_package() -> None:
    assert private_imports_from_outside(GRAPH) == []


def test_ode_uses_only_the_public_modules_of_components() -> None:
    # ode reads the components' code, names, shared arguments and emitted events through their public modules; the
    # underscored ones stay free to change with the components alone.
    components = set(module_names(ROOT / "components", "components"))
    assert {"components.code", "components.common", "components.names", "components.emits"} <= components
    privates = sorted((name, target) for name, path in module_names(SOURCE).items()
                      for target in imports_of(name, path, components) if target.rpartition(".")[2].startswith("_")
                      and not target.endswith("__init__"))
    assert privates == []


def test_tests_use_public_modules() -> None:
    names = set(GRAPH)
    for path in sorted((ROOT / "tests").glob("*.py")):
        privates = {t for t in imports_of("tests." + path.stem, path, names)
                    if t.rpartition(".")[2].startswith("_") and not t.endswith("__main__")}
        assert privates <= PRIVATE_ALLOWED.get(path.name, set()), (path.name, privates)


# -- start-up --------------------------------------------------------------------------------------------------------


def loaded_after(code: str) -> list[str]:
    """The heavy libraries in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             f"sys.__stderr__.write('HEAVY=' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    marker = done.stderr.rpartition("HEAVY=")[2]
    assert done.returncode == 0 and marker, done.stderr
    return list(json.loads(marker))


HELP = "from ode.cli import main\ntry:\n    main(['--help'], prog_name='ode')\nexcept SystemExit:\n    pass"


def test_import_ode_and_ode_help_load_no_heavy_library() -> None:
    assert loaded_after("import ode") == []
    assert loaded_after(HELP) == []


def test_the_start_up_probe_sees_a_heavy_library() -> None:
    assert loaded_after("import ode, yaml") == ["yaml"]
    assert "pydantic" in loaded_after("import ode\node.load_library")  # a public name resolved on first use


def test_every_public_name_of_ode_resolves() -> None:
    import ode

    assert sorted(ode.__all__) == sorted(set(ode.__all__))
    for name in ode.__all__:
        assert getattr(ode, name) is not None, name
    with pytest.raises(AttributeError):
        ode.no_such_name  # noqa: B018


def test_lazily_registered_commands_say_what_their_own_help_says() -> None:
    from click.testing import CliRunner

    from ode.cli.core import COMMANDS, LazyGroup, main

    lazy_help = CliRunner().invoke(main, ["--help"], terminal_width=110).output
    for name, lazy in COMMANDS.items():
        command = main.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name, name
        first = (command.help or "").split("\n\n")[0]
        assert " ".join(first.split()) == " ".join(lazy.help.split()), name
    # With every command loaded, the group's help is the same text.
    assert isinstance(main, LazyGroup) and set(main.commands) == set(COMMANDS)
    assert CliRunner().invoke(main, ["--help"], terminal_width=110).output == lazy_help


# -- planted breakages: each check can fail ---------------------------------------------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ode"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in {p.parent for p in root.rglob("*.py")} | {root}:
        (folder / "__init__.py").touch()
    return root


def test_a_planted_cycle_through_a_function_and_type_checking_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, {
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ode.a import f\n",
    })
    found = cycle(import_graph(root))
    assert found is not None and set(found) == {"ode.a", "ode.b"}


def test_a_planted_cycle_between_packages_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, {
        "contracts/model.py": "from ..policy import rules\n",
        "policy/rules.py": "x = 1\n",
        "policy/gate.py": "from ..contracts.model import x\n",
    })
    graph = import_graph(root)
    assert cycle(graph) is None  # no cycle between modules...
    assert set(cycle(package_graph(graph)) or []) == {"contracts", "policy"}  # ... but between packages


def test_a_planted_protocol_importing_an_implementation_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, {
        "registry/protocol.py": "from typing import Protocol\nclass Backend(Protocol): ...\n"
                                "def default():\n    from .opening import open_default\n",
        "registry/opening.py": "def open_default():\n    from .sqlite import Registry\n",
        "registry/sqlite.py": "class Registry: ...\n",
    })
    graph = import_graph(root)
    assert protocol_modules(root) == {"ode.registry.protocol"}
    found = protocols_reaching_implementations(graph, protocol_modules(root), {"ode.registry.sqlite"})
    assert found == {"ode.registry.protocol": {"ode.registry.sqlite"}}


def test_a_planted_private_import_from_outside_is_found(tmp_path: Path) -> None:
    root = plant(tmp_path, {
        "engines/_base.py": "x = 1\n",
        "engines/simulated.py": "from ._base import x\n",
        "program.py": "from .engines._base import x\n",
    })
    assert private_imports_from_outside(import_graph(root)) == [("ode.program", "ode.engines._base")]
