"""Loading a user's ``module:callable`` and calling factories with the keywords they accept."""
from __future__ import annotations

import sys
import textwrap

import pytest

from trainers.errors import SetupError
from trainers.imports import call_with_supported, is_callable_spec, load_callable


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "byo_user_mod.py").write_text(textwrap.dedent("""
        import math
        VALUE = 3
        def make(width=2, num_classes=None):
            return ("made", width, num_classes)
        class Holder:
            @staticmethod
            def build():
                return "built"
    """))
    (tmp_path / "byo_broken_dep.py").write_text("import surely_not_installed_pkg\n")
    (tmp_path / "byo_raises.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("byo_user_mod", "byo_broken_dep", "byo_raises"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("spec,ok", [("pkg.mod:fn", True), ("mod:Cls.method", True),
                                     ("dir/file.py:fn", True), ("torchvision:resnet18", True),
                                     ("cnn", False), ("mod:", False), (":fn", False),
                                     ("mod:fn()", False)])
def test_spec_syntax(spec, ok):
    assert is_callable_spec(spec) is ok


def test_loads_module_attribute_and_dotted_attribute(user_module):
    assert load_callable("byo_user_mod:make")(width=5) == ("made", 5, None)
    assert load_callable("byo_user_mod:Holder.build")() == "built"


def test_loads_from_a_file_path(user_module):
    fn = load_callable(f"{user_module / 'byo_user_mod.py'}:make")
    assert fn() == ("made", 2, None)


@pytest.mark.parametrize("spec,pattern", [
    ("byo_no_such_module:f", "no module named 'byo_no_such_module'.*PYTHONPATH"),
    ("byo_user_mod:missing", r"has no attribute 'missing'; callables there: \['Holder', 'make'"),
    ("byo_user_mod:VALUE", "is a int, not a callable"),
    ("byo_broken_dep:f", "imports 'surely_not_installed_pkg', which is not installed"),
    ("byo_raises:f", "raised RuntimeError: boom at import"),
    ("not a spec", "must have the form 'package.module:callable'"),
    ("/nowhere/file.py:f", "file '/nowhere/file.py' does not exist"),
])
def test_failures_name_the_spec_and_the_cause(user_module, spec, pattern):
    with pytest.raises(SetupError, match=pattern):
        load_callable(spec, what="model factory")


def test_module_in_the_current_folder_is_found(tmp_path, monkeypatch):
    (tmp_path / "byo_cwd_only.py").write_text("def f():\n    return 7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert load_callable("byo_cwd_only:f")() == 7
        assert str(tmp_path) not in sys.path          # the path is restored
    finally:
        sys.modules.pop("byo_cwd_only", None)


def test_call_with_supported_passes_only_declared_keywords():
    def wants_classes(width, num_classes):
        return width, num_classes

    def takes_kwargs(**kw):
        return kw

    offered = {"num_classes": 10, "input_shape": (1, 8, 8)}
    assert call_with_supported(wants_classes, {"width": 4}, offered, what="f") == (4, 10)
    assert call_with_supported(takes_kwargs, {"a": 1}, offered, what="f") == {"a": 1}
    # The user's own option wins over the offered value.
    assert call_with_supported(wants_classes, {"width": 1, "num_classes": 3}, offered,
                               what="f") == (1, 3)
    with pytest.raises(SetupError, match=r"cannot be called with options .*keyword argument 'depth'"):
        call_with_supported(wants_classes, {"width": 1, "depth": 2}, offered, what="f")
