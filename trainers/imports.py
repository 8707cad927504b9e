"""Load a user's callable from an explicit ``module:callable`` name.

Only names the user wrote are imported: ``package.module:function`` (imported from the Python path,
then from the current folder) or ``path/to/file.py:function`` (loaded from that file). Every
failure is a ``SetupError`` naming the spec and what went wrong.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

from trainers.errors import SetupError

_MODULE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_ATTR = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
SPEC_PATTERN = re.compile(rf"^(?P<module>{_MODULE}|[^:]+\.py):(?P<attr>{_ATTR})$")


def is_callable_spec(name: str) -> bool:
    """True when ``name`` has the form ``module:callable`` or ``file.py:callable``."""
    return bool(SPEC_PATTERN.match(name))


def load_callable(spec: str, *, what: str = "callable") -> Callable[..., Any]:
    """Import ``module:attr`` (``attr`` may be dotted, e.g. ``Class.method``) and return it."""
    match = SPEC_PATTERN.match(spec)
    if not match:
        raise SetupError(f"{what} '{spec}' must have the form 'package.module:callable' or "
                         f"'path/to/file.py:callable'")
    module_name, attr = match.group("module"), match.group("attr")
    module = _import_file(module_name, spec, what) if module_name.endswith(".py") \
        else _import_module(module_name, spec, what)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            public = sorted(n for n in dir(module) if not n.startswith("_")
                            and callable(getattr(module, n, None)))[:20]
            raise SetupError(f"{what} '{spec}': module '{module_name}' has no attribute "
                             f"'{attr}'; callables there: {public}")
        target = getattr(target, part)
    if not callable(target):
        raise SetupError(f"{what} '{spec}' is a {type(target).__name__}, not a callable")
    return target


def _import_module(name: str, spec: str, what: str) -> ModuleType:
    cwd = str(Path.cwd())
    try:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # `sparsity-search` (a console script) does not put the current folder on the path
            if exc.name != name.split(".")[0] or cwd in sys.path:
                raise
            sys.path.insert(0, cwd)
            try:
                return importlib.import_module(name)
            finally:
                sys.path.remove(cwd)
    except ModuleNotFoundError as exc:
        if exc.name and not (name == exc.name or name.startswith(exc.name + ".")):
            raise SetupError(f"{what} '{spec}': importing '{name}' failed because it imports "
                             f"'{exc.name}', which is not installed") from exc
        raise SetupError(f"{what} '{spec}': no module named '{name}' on the Python path or in "
                         f"the current folder ({cwd}); add its folder to PYTHONPATH or name "
                         f"the file, e.g. 'path/to/{name.split('.')[-1]}.py:...'") from exc
    except Exception as exc:
        raise SetupError(f"{what} '{spec}': importing '{name}' raised "
                         f"{type(exc).__name__}: {exc}") from exc


def _import_file(path_text: str, spec: str, what: str) -> ModuleType:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise SetupError(f"{what} '{spec}': file '{path}' does not exist")
    module_name = f"_user_{path.stem}_{abs(hash(str(path))) & 0xFFFFFFFF:x}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    file_spec = importlib.util.spec_from_file_location(module_name, path)
    if file_spec is None or file_spec.loader is None:
        raise SetupError(f"{what} '{spec}': '{path}' cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module   # pickling (Ray, DataLoader workers) finds the classes
    try:
        file_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise SetupError(f"{what} '{spec}': running '{path}' raised "
                         f"{type(exc).__name__}: {exc}") from exc
    return module


def call_with_supported(fn: Callable[..., Any], options: Mapping[str, Any],
                        offered: Mapping[str, Any], *, what: str) -> Any:
    """Call ``fn(**options, **offered')`` where ``offered'`` keeps only the keyword arguments
    ``fn`` names in its signature and ``options`` does not already set.

    This lets a user's factory declare ``num_classes`` or ``input_shape`` only if it needs them.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):   # some builtins have no signature: pass options only
        return fn(**options)
    extra = {k: v for k, v in offered.items() if k in signature.parameters and k not in options}
    try:
        signature.bind(**options, **extra)
    except TypeError as exc:
        given = f"options {sorted(options)}" if options else "no options"
        raise SetupError(f"{what} cannot be called with {given} (and what it may take of "
                         f"{sorted(offered)}): {exc}") from exc
    return fn(**options, **extra)
