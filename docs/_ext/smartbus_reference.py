"""Sphinx extension: what the API reference needs beyond autodoc.

- The signatures of the compiled module ``smartbus._native`` (``Head``, the
  sending methods the clients inherit from ``NativeClient``) come from its
  type stub, ``smartbus/_native.pyi`` (kept equal to the module by mypy's
  stubtest in tests/test_types.py), instead of the lines Cython embeds in
  the docstrings, which carry C types and ``self``.
- ``smartbus-error-codes``: the table of the SDK's error codes, built from
  the SDK's own table (``smartbus._native.sdk_error_table()``).
"""

from __future__ import annotations

import ast
import functools
import os
from typing import Any, Optional

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from smartbus import _native

#: the module whose signatures the stub gives
NATIVE_MODULE = _native.__name__


def stub_signatures(path: str) -> dict[str, tuple[str, Optional[str]]]:
    """``{"Class.method": ("(arg: type, ...)", "return type")}`` for every
    function of the stub at ``path``, without the ``self``/``cls`` of
    methods; a class's constructor is under ``"Class.__init__"`` (from
    ``__new__`` where the stub declares that instead)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found: dict[str, tuple[str, Optional[str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = _signature(node, is_method=False)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.decorator_list:
                    name = "__init__" if member.name == "__new__" else member.name
                    sig, returns = _signature(member, is_method=True)
                    found["%s.%s" % (node.name, name)] = \
                        (sig, None if name == "__init__" else returns)
    return found


def _signature(fn: ast.FunctionDef, is_method: bool) -> tuple[str, Optional[str]]:
    args = fn.args
    if is_method:       # drop self / cls, wherever the stub declares it
        if args.posonlyargs:
            args.posonlyargs = args.posonlyargs[1:]
        else:
            args.args = args.args[1:]
    return "(%s)" % ast.unparse(args), ast.unparse(fn.returns) if fn.returns else None


def _use_stub_signature(signatures: dict[str, tuple[str, Optional[str]]], app: Sphinx,
                        what: str, name: str, obj: Any, options: Any, signature: Optional[str],
                        return_annotation: Optional[str]) -> Optional[tuple[str, Optional[str]]]:
    """autodoc-process-signature: the stub's signature for an object of the
    compiled module (None: autodoc's own)."""
    if getattr(obj, "__module__", None) != NATIVE_MODULE:
        return None
    qualname = getattr(obj, "__qualname__", "")
    return signatures.get(qualname + ".__init__" if what in ("class", "exception") else qualname)


class ErrorCodes(SphinxDirective):
    """``smartbus-error-codes``: a table of code, name and meaning."""

    def run(self) -> list[nodes.Node]:
        rows = [[str(code), nodes.literal(text=name), text]
                for code, name, text in _native.sdk_error_table()]
        table = nodes.table()
        group = nodes.tgroup(cols=3)
        table += group
        group.extend(nodes.colspec(colwidth=width) for width in (6, 32, 40))
        group += nodes.thead("", self._row(["code", "name", "meaning"]))
        group += nodes.tbody("", *(self._row(r) for r in rows))
        return [table]

    @staticmethod
    def _row(cells: list[Any]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            content = cell if isinstance(cell, nodes.Node) else nodes.Text(cell)
            row += nodes.entry("", nodes.paragraph("", "", content))
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    stub = os.path.join(os.path.dirname(_native.__file__), "_native.pyi")
    app.connect("autodoc-process-signature",
                functools.partial(_use_stub_signature, stub_signatures(stub)))
    app.add_directive("smartbus-error-codes", ErrorCodes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
