"""The project's structure rules: no import cycles, no module over 300 lines, the package layering
(spaces <- trainers <- search), and no torch import for the commands that only read a study.

The rules are checked with ``tests/import_graph.py`` (stdlib ``ast``); its own behaviour is
checked first on a tiny synthetic package."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT, cli_env

import import_graph

MAX_LINES = 300
# package -> the project packages it must not import (type-only imports included: a dependency).
FORBIDDEN = {"spaces": {"trainers", "search"}, "trainers": {"search"}}


def write_package(root, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


# --- the checker itself, on a synthetic tree -------------------------------------------------

def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    write_package(tmp_path, {
        "search/__init__.py": "from search.api import run\n",
        "search/api.py": "from .config import load\n\ndef run():\n    pass\n",
        "search/config.py": "def load():\n    from search import api\n",
        "spaces/__init__.py": "", "trainers/__init__.py": "",
    })
    assert import_graph.cycles(tmp_path) == [["search.api", "search.config", "search.api"]]


def test_checker_ignores_type_checking_imports_and_parent_package_init(tmp_path):
    write_package(tmp_path, {
        "spaces/__init__.py": "from spaces.space import Space\n",
        "spaces/space.py": "from spaces.candidate import Candidate\nclass Space: pass\n",
        "spaces/candidate.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from spaces.space import Space
            else:
                import trainers.fit
            class Candidate: pass
            """,
        "trainers/__init__.py": "", "trainers/fit.py": "", "search/__init__.py": "",
    })
    graph = import_graph.edges(tmp_path)
    assert graph["spaces.candidate"] == {"trainers", "trainers.fit"}  # the else branch runs
    assert graph["spaces.space"] == {"spaces.candidate"}  # no edge back to its own __init__
    assert import_graph.cycles(tmp_path) == []
    assert import_graph.cycles(tmp_path, type_checking=True) == [
        ["spaces.candidate", "spaces.space", "spaces.candidate"]]


def test_checker_sees_an_outside_import_run_the_package_init(tmp_path):
    write_package(tmp_path, {
        "search/__init__.py": "from search.api import run\n",
        "search/api.py": "import trainers.fit\n",
        "trainers/__init__.py": "", "trainers/fit.py": "from search.config import Config\n",
        "search/config.py": "", "spaces/__init__.py": "",
    })
    assert import_graph.cycles(tmp_path) == [["search", "search.api", "trainers.fit", "search"]]
    assert import_graph.long_modules(limit=0, root=tmp_path) == [
        ("search", 1), ("search.api", 1), ("trainers.fit", 1)]


# --- the rules, on the real tree ---------------------------------------------------------------

def test_no_import_cycles():
    loops = import_graph.cycles()
    assert not loops, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_no_long_modules():
    long = import_graph.long_modules(MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(
        f"{name}: {lines}" for name, lines in long)


def test_package_layering():
    broken = [f"{source} -> {target}"
              for source, targets in sorted(import_graph.edges(type_checking=True).items())
              for target in sorted(targets)
              if target.split(".")[0] in FORBIDDEN.get(source.split(".")[0], ())]
    assert not broken, "imports against the layering spaces <- trainers <- search:\n" + "\n".join(
        broken)


# Runs ``python -m search ARGS`` in-process, then reports whether torch got imported and, if so,
# the project lines (``file:line``) on the stack at its first import.
WRAPPER = """\
import os, runpy, sys, traceback

class Spy:
    via = None
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and Spy.via is None:
            Spy.via = [f"{os.path.relpath(f.filename)}:{f.lineno}" for f in traceback.extract_stack()
                       if f.filename.startswith(os.getcwd())]

sys.meta_path.insert(0, Spy())
sys.argv = ["search", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("search", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
print("TORCH_IMPORTED", "torch" in sys.modules, "via", " -> ".join(Spy.via or []))
sys.exit(code)
"""


@pytest.mark.parametrize("command", [["--help"], ["status"], ["pareto"]],
                         ids=["help", "status", "pareto"])
def test_reading_commands_do_not_import_torch(command, request):
    if command != ["--help"]:
        study = request.getfixturevalue("finished_study")
        command = [*command, "--study", study.config.study, "--output-dir", study.config.output_dir]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], cwd=REPO_ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = done.stdout.splitlines()[-1]
    assert report.startswith("TORCH_IMPORTED False"), (
        f"`python -m search {' '.join(command)}` imported torch, {report.split(' via ')[-1]}")


def test_the_readme_code_map_names_every_module_of_search():
    """The README's code map matches the tree: every module of ``search/`` is named in it."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in import_graph.modules(REPO_ROOT)
               if name.startswith("search.") and not name.endswith("__main__")
               and name.rsplit(".", 1)[1] not in section]
    assert not missing, f"modules missing from the README code map: {missing}"
