"""Lint and types are part of the test run, so a red ruff or mypy fails CI like a failing test."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Dict, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_nuke_plugin_clean() -> None:
    """The plugin against `types-nuke`, with a typed shim for `nukescripts` (which the stubs lack)."""
    env = dict(os.environ, MYPYPATH=os.pathsep.join(["nuke_plugin/typings", "nuke_plugin", "core"]))
    result = subprocess.run(
        [str(BIN / "mypy"), "--python-version", "3.9", "--no-incremental", "nuke_plugin/tether_nuke",
         "nuke_plugin/init.py", "nuke_plugin/menu.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env,
    )
    # 3.9 is Nuke 14's Python; only the plugin is parsed at 3.9, pydantic's sources are followed silently.
    if "Pattern matching is only supported" in result.stdout:
        result = subprocess.run(
            [str(BIN / "mypy"), "--no-incremental", "nuke_plugin/tether_nuke", "nuke_plugin/init.py",
             "nuke_plugin/menu.py"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(900)
def test_mypy_blender_addon_clean(venv312: Future) -> None:
    """fake-bpy-module's stubs use Python 3.12 syntax, so this check runs in a 3.12 venv of its own (built in the
    background from the start of the session: see ``venv312`` in conftest.py)."""
    venv = venv312.result(timeout=900)
    if venv is None:
        pytest.skip("no Python 3.12 interpreter on this machine")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "mypy", "--python-version", "3.12", "--check-untyped-defs",
         "--explicit-package-bases", "--ignore-missing-imports", "--follow-imports=silent", "--warn-unused-ignores",
         "--no-incremental", "blender_addon"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=dict(os.environ, MYPYPATH="core"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(folder: Path) -> Dict[str, Set[str]]:
    """Every module under ``folder`` -> the top-level names it imports (absolute imports; relative ones stay inside)."""
    found: Dict[str, Set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and _dynamic_import(node):
                names.add(_dynamic_import(node).split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def _dynamic_import(call: ast.Call) -> str:
    """The module an ``importlib.import_module(...)`` or ``__import__(...)`` call names, as far as its text shows
    (``f"tether.{service}.submit"`` shows ``tether.``); "" for any other call."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not call.args:
        return ""
    first = call.args[0]
    if isinstance(first, ast.JoinedStr) and first.values:
        first = first.values[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""


@pytest.mark.parametrize("folder", ["core/tether", "nuke_plugin", "blender_addon"])
def test_library_and_plugins_import_only_the_library(folder: str) -> None:
    """Dependencies point one way: the library the DCCs load imports none of the command, the installer or the local
    services, and neither do the plugins (the DCCs get the library only)."""
    above = {"tether_cli", "tether_install", "tether_services"}
    offenders = {module: sorted(names & above) for module, names in _imports(ROOT / folder).items() if names & above}
    assert not offenders, offenders


def _package_imports(folder: Path, package: str) -> dict:
    """Module -> the modules of the same package it imports, anywhere in its body (a lazy import inside a function
    or under TYPE_CHECKING still ties the two modules together)."""
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph: dict = {}
    for name in modules:
        tree = ast.parse((folder / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1 or (node.level == 0 and base.split(".")[0] == package):
                    base = base if node.level == 1 else base.partition(".")[2]
                    if base:
                        found.add(base.split(".")[0])
                    else:  # from . import a, b
                        found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith(package + "."))
        graph[name] = sorted((found & modules) - {name})
    return graph


def _cycles(graph: dict) -> list:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict = {}
    low: dict = {}
    stack: list = []
    groups: list = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("folder,package", [("nuke_plugin/tether_nuke", "tether_nuke"),
                                            ("blender_addon", "blender_addon")])
def test_the_plugins_have_no_import_cycle(folder: str, package: str) -> None:
    graph = _package_imports(ROOT / folder, package)
    assert graph, folder
    assert _cycles(graph) == [], graph


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


@pytest.mark.xdist_group("quality")
def test_xdist_groups_hold(request: pytest.FixtureRequest) -> None:
    """Under xdist's --dist loadgroup (the suite's addopts) a grouped test's id carries its group, or the group's
    tests are spread over the workers and each builds the group's shared venv or zip again (pytest 9.2 with xdist
    3.8 did, silently: pytest-dev/pytest-xdist#1386)."""
    if not hasattr(request.config, "workerinput") or not request.config.getvalue("loadgroup"):
        pytest.skip("not run by xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@quality"), (
        f"{request.node.nodeid}: xdist groups do not hold under pytest {pytest.__version__}; a venv made before the "
        "dev extra held pytest below 9.2 needs `.venv/bin/pip install -e '.[dev]'` again")
