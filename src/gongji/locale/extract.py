"""Babel extraction of msgids from our Python code, read from its syntax tree.

Babel's token-based Python extractor joins every string inside a call, so
`Text("first" if later else "other")` would become one wrong msgid "firstother",
and `Text(template, …)` with `template` assigned a few lines earlier would be
missed. Rule code writes both (rules/cascade.py, rules/params.py), so this
extractor reads the first argument of each keyword call as an expression:
a string, either branch of a conditional, or a name assigned such strings in
the enclosing function or module. Babel is handed every argument (a string, or
None where computed), so a keyword given as `name:N` in babel.toml takes its Nth:
`Reason.because(code, field, template)` is `because:3`. f-strings and other expressions are dynamic
and are not msgids; `dynamic_calls` lists them so a test can refuse them where
every text must be catalogued.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from typing import IO, Any

Scope = dict[str, list[ast.expr]]


def _assignments(body: list[ast.stmt]) -> Scope:
    """Name → the expressions assigned to it directly in `body` (not in nested functions or classes)."""
    scope: Scope = {}
    for statement in body:
        for node in _walk_without_scopes(statement):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        scope.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                scope.setdefault(node.target.id, []).append(node.value)
    return scope


def _walk_without_scopes(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _walk_without_scopes(child)


def _strings(node: ast.expr, scopes: list[Scope], seen: frozenset[str] = frozenset()) -> list[str] | None:
    """Every string `node` can be, or None when it can be something computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body, scopes, seen), _strings(node.orelse, scopes, seen)
        return None if body is None or orelse is None else body + orelse
    if isinstance(node, ast.Name) and node.id not in seen:
        for scope in reversed(scopes):
            if node.id in scope:
                found: list[str] = []
                for value in scope[node.id]:
                    strings = _strings(value, scopes, seen | {node.id})
                    if strings is None:
                        return None
                    found.extend(strings)
                return found
    return None


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def keyword_calls(source: str | bytes, keywords: Collection[str]) -> Iterator[tuple[int, str, str | None]]:
    """(line, keyword, arguments) for each msgid a keyword call's first argument can be: that msgid (None if
    dynamic) followed by the other arguments (each a string, or None)."""
    tree = ast.parse(source)

    def visit(node: ast.AST, scopes: list[Scope]) -> Iterator[tuple[int, str, str | None]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, [*scopes, _assignments(child.body)])
                continue
            if isinstance(child, ast.Call) and child.args and (name := _called_name(child)) in keywords:
                strings = _strings(child.args[0], scopes)
                rest = [_single(argument, scopes) for argument in child.args[1:]]
                for message in strings if strings is not None else [None]:
                    yield child.lineno, name, (message, *rest)
            yield from visit(child, scopes)

    yield from visit(tree, [_assignments(tree.body)])


def _single(node: ast.expr, scopes: list[Scope]) -> str | None:
    strings = _strings(node, scopes)
    return strings[0] if strings is not None and len(strings) == 1 else None


def dynamic_calls(source: str | bytes, keywords: Collection[str]) -> list[int]:
    """Lines of keyword calls whose text (first argument) is computed (an f-string, a call…), so no msgid can
    match it."""
    return [line for line, _name, messages in keyword_calls(source, keywords) if messages[0] is None]


def extract_python(
    fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str], options: dict[str, Any]
) -> Iterator[tuple[int, str, str, list[str]]]:
    """A Babel extraction method (locale/babel.toml); the `keywords` option names the calls to read."""
    for line, name, messages in keyword_calls(fileobj.read(), keywords):
        yield line, name, list(messages), []
