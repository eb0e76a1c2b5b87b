"""The layering holds: import-linter's contracts pass, and no module of Cockpit imports itself in a circle.

Both run on a copy installed with ``pip install --target`` (which also proves that a plain
``pip install .`` works): there ``cockpit.widgets``, mapped from the top-level ``widgets/``
folder, sits inside the package, so the graph holds the views too. Imports under
``TYPE_CHECKING`` count, as everywhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("installed")
    build = tmp_path_factory.mktemp("source")
    # Build from a copy, so the working tree gets no build/ or egg-info folders.
    source = build / "cockpit-src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "work_dirs", "__pycache__",
                                                                 "*.egg-info", "build", ".pytest_cache"))
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                             str(target), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (target / "cockpit" / "widgets" / "tui" / "app.tcss").is_file(), "pip install . lost the views"
    return target


def _env(installed: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(installed)}


def test_import_linter_contracts_hold(installed: Path) -> None:
    result = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
                            cwd=installed, env=_env(installed), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_no_import_cycle_among_cockpits_modules(installed: Path) -> None:
    # Strongly connected components of the import graph (Tarjan); any with two or more
    # modules, or a module importing itself, is a cycle.
    script = textwrap.dedent("""
        import grimp, sys
        graph = grimp.build_graph("cockpit", cache_dir=None)  # TYPE_CHECKING imports included
        modules = sorted(graph.modules)
        edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
        index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]
        sys.setrecursionlimit(10000)
        def visit(m):
            index[m] = low[m] = counter[0]; counter[0] += 1
            stack.append(m); on_stack.add(m)
            for n in edges[m]:
                if n not in index:
                    visit(n); low[m] = min(low[m], low[n])
                elif n in on_stack:
                    low[m] = min(low[m], index[n])
            if low[m] == index[m]:
                component = []
                while True:
                    n = stack.pop(); on_stack.discard(n); component.append(n)
                    if n == m:
                        break
                if len(component) > 1 or m in edges[m]:
                    cycles.append(sorted(component))
        for m in modules:
            if m not in index:
                visit(m)
        print(len(modules))
        for cycle in cycles:
            print(" <-> ".join(cycle))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=installed, env=_env(installed),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    count, *cycles = result.stdout.splitlines()
    assert int(count) > 60, "the graph should hold the core and the views"
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
