"""The import graph of the project's own packages (``spaces``, ``trainers``, ``search``).

Stdlib ``ast`` only; nothing is imported or run. Run ``python tests/import_graph.py [ROOT]`` to
print the import cycles and the long modules; ``tests/test_structure.py`` enforces both.

What counts as an import: every ``import`` / ``from ... import`` statement, at module level or
inside functions, methods, ``try`` or ``if`` blocks, absolute or relative. Imports under
``if TYPE_CHECKING:`` never run, so they are left out unless ``type_checking=True``.
Dynamic imports (``importlib.import_module``) are not seen.

Resolving a statement to modules:
- ``import a.b.c`` -> ``a.b.c``; ``from a.b import c`` -> ``a.b.c`` if that is a module of the
  project (``a/b/c.py`` or ``a/b/c/__init__.py``), else ``a.b`` (``c`` is a name in it).
- Running ``a.b.c`` first runs the ``__init__`` of its parent packages ``a`` and ``a.b``, so the
  importer also gets an edge to each parent package -- except to a package that contains the
  importer itself: that ``__init__`` has always started before the importer runs, so the edge
  adds nothing (and would turn every "``__init__`` re-exports a submodule" into a false cycle).
  A statement that names the package itself (``import search``, ``from search import name``)
  always gives an edge to it, from anywhere: that is a real cycle with its ``__init__``.
"""
from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spaces", "trainers", "search")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file in the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:  # ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def _statements(nodes, type_checking: bool):
    """Every import statement in ``nodes`` and below, skipping ``if TYPE_CHECKING:`` bodies
    unless asked (their ``else:`` does run)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and not type_checking:
            yield from _statements(node.orelse, type_checking)
        else:
            yield from _statements(ast.iter_child_nodes(node), type_checking)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             known: dict[str, Path]) -> set[str]:
    """The modules one statement names (before adding parent packages)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:  # relative: climb from the importer's own package
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}


def edges(root: Path = ROOT, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the project modules it imports (see the module docstring for the rules)."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        graph[name] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _statements(tree.body, type_checking):
            for target in _targets(node, name, path.name == "__init__.py", known):
                parts = target.split(".")
                parents = [".".join(parts[:i]) for i in range(1, len(parts))]
                graph[name] |= {p for p in parents if not f"{name}.".startswith(f"{p}.")}
                graph[name].add(target)
        graph[name] &= known.keys()
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (recursive; the graph is a few hundred nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path(graph: dict[str, set[str]], start: str, goals: set[str], allowed: set[str]) -> list[str]:
    """Shortest path (breadth first, inside ``allowed``) from ``start`` to any of ``goals``."""
    came_from: dict[str, str | None] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & allowed):
            if nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt in goals:
                path = [nxt]
                while path[-1] != start or len(path) == 1:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(nxt)
    raise ValueError(f"no path from {start} to {goals}")


def cycles(root: Path = ROOT, type_checking: bool = False) -> list[list[str]]:
    """Each import cycle as one closed walk through all of its modules: ``[a, b, c, a]``."""
    graph = edges(root, type_checking)
    loops = []
    for component in _components(graph):
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        members, walk = set(component), [component[0]]
        while unseen := members - set(walk):
            walk += _path(graph, walk[-1], unseen, members)[1:]
        loops.append(walk + _path(graph, walk[-1], {walk[0]}, members)[1:])
    return loops


def long_modules(limit: int = 300, root: Path = ROOT) -> list[tuple[str, int]]:
    """Modules over ``limit`` lines, longest first."""
    counts = [(name, len(path.read_text(encoding="utf-8").splitlines()))
              for name, path in modules(root).items()]
    return sorted(((n, c) for n, c in counts if c > limit), key=lambda item: (-item[1], item[0]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve() if args else ROOT
    loops, long = cycles(root), long_modules(root=root)
    print(f"Import cycles ({len(loops)}):")
    for loop in loops:
        print("  " + " -> ".join(loop))
    print(f"Modules over 300 lines ({len(long)}):")
    for name, lines in long:
        print(f"  {lines:5d}  {name}")
    return 1 if loops or long else 0


if __name__ == "__main__":
    sys.exit(main())
