"""Every file the tool writes goes through ``trainers.checkpoint.atomic_write`` (temp file + rename),
so a kill never leaves a half-written file that a later run would trust.

A static check over the source: calls that write a file (``open(..., "w")``, ``torch.save``,
``to_csv(path)``, ``savefig``, ``write_text``, ``json.dump``, ...) may only write to a temporary
path handed out by ``atomic_write`` (an argument named ``tmp...``, or ``Path(tmp)``) or to an
in-memory buffer (``buf...``). Appending (``"a"``: logs) is
allowed; a deliberate exception carries the comment ``# non-atomic: <why>`` on its line.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "spaces", "trainers")
ALLOWED_FILES = {Path("trainers/checkpoint.py")}       # where atomic_write itself lives
# Loads of bytes that never were a file: a worker process unpickles what its parent pickled for
# it in memory (what multiprocessing would otherwise unpickle itself), to say why it cannot.
ALLOWED_LOADS = {(Path("search/run/worker.py"), "inputs = pickle.loads(inputs)")}
WRITER_METHODS = {"save", "savefig", "to_csv", "to_parquet", "to_json", "write_html",
                  "write_image", "write_text", "write_bytes", "dump", "export", "save_pretrained"}


def _is_tmp(node: ast.AST | None) -> bool:
    """A temporary path (``tmp``, ``Path(tmp)``) or an in-memory buffer (``buffer``)."""
    if isinstance(node, ast.Call):
        return any(_is_tmp(a) for a in node.args)
    return isinstance(node, ast.Name) and node.id.startswith(("tmp", "buf"))


def _violations(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        line = lines[node.lineno - 1]
        if "# non-atomic:" in line:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "open":
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            text = mode.value if isinstance(mode, ast.Constant) else "r"
            if any(c in str(text) for c in "wx+") and not _is_tmp(node.args[0] if node.args
                                                                  else None):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {line.strip()}")
        elif name in WRITER_METHODS and isinstance(func, ast.Attribute):
            if name in ("write_text", "write_bytes") and not _is_tmp(func.value):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {line.strip()}")
            elif name not in ("write_text", "write_bytes"):
                target = [a for a in node.args if not isinstance(a, ast.Constant)]
                if name == "to_csv" and not node.args and not any(
                        k.arg in ("path_or_buf",) for k in node.keywords):
                    continue                        # to_csv() returns a string
                if name == "dump" and len(node.args) < 2:
                    continue                        # yaml.dump(obj) returns a string
                if name == "save" and isinstance(func.value, ast.Name) and \
                        func.value.id not in ("torch",):
                    continue                        # some_object.save(...) is not a file write
                if name == "export" and not (isinstance(func.value, ast.Attribute)
                                             and func.value.attr == "onnx"):
                    continue
                if not any(_is_tmp(a) for a in target):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {line.strip()}")
    return found


def test_the_guard_catches_a_direct_write(tmp_path):
    bad = REPO / "search" / "_guard_probe_tmp.py"
    try:
        bad.write_text("import torch\n\ndef f(state, path):\n    torch.save(state, path)\n"
                       "    open(path, 'w').write('x')\n")
        assert len(_violations(bad)) == 2
    finally:
        bad.unlink()


@pytest.mark.parametrize("package", PACKAGES)
def test_files_are_written_atomically(package):
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        if path.relative_to(REPO) not in ALLOWED_FILES:
            found += _violations(path)
    assert not found, ("write these through trainers.checkpoint.atomic_write (a kill must not "
                       "leave a half-written file):\n" + "\n".join(found))


@pytest.mark.parametrize("package", PACKAGES)
def test_checkpoints_are_loaded_only_weights_only(package):
    """Every checkpoint load goes through ``load_checkpoint`` (``weights_only=True``): a foreign
    file can't run code."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        if path.relative_to(REPO) in ALLOWED_FILES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if (path.relative_to(REPO), line.strip()) in ALLOWED_LOADS:
                continue
            if any(call in line for call in ("torch.load(", "pickle.load", "pickle.loads(",
                                             "dill.load")):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "load checkpoints with trainers.checkpoint.load_checkpoint:\n" + \
        "\n".join(found)
