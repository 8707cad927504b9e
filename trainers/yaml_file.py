"""YAML files read with YAML 1.2's numbers: ``1e-3``, ``2.0e5`` and ``1.0e6`` are floats.

PyYAML follows YAML 1.1, where a float's exponent needs a dot before it and a sign after the
``e`` (``2.0e+5``); written as most people and most tools write them, such numbers came back as
strings and were refused as "not a number". ``safe_load`` is ``yaml.safe_load`` (no Python
objects) with YAML 1.2's float pattern added and duplicate keys refused; everything else reads
as before.
"""
from __future__ import annotations

import re
from typing import IO, Any

import yaml


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats (exponent without dot or sign) and
    refuses a key given twice in one mapping (PyYAML keeps the last one, silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"the key '{key}' is given twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def safe_load(stream: str | IO[str]) -> Any:
    """Parse YAML like ``yaml.safe_load``, with YAML 1.2 floats (see the module doc)."""
    return yaml.load(stream, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


__all__ = ["safe_load"]
