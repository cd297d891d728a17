"""Parameter pytrees: nested NamedTuples (also tuples, lists, str-keyed dicts) of arrays.

Every container of the agent (stem, heads, optimiser state) is such a tree. The optimiser and
the checkpoint need them as flat lists of named arrays; the name of a leaf is the path of field
names, indices and keys joined by dots, e.g. `stages.0.res1.conv2.W` (the order is the field
order of the NamedTuples, so it is stable across runs).

A leaf is anything with `shape` and `dtype` (NumPy or CuPy arrays, NumPy scalars).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rtrl_ref.xp import array_module


def is_leaf(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _children(tree, where: str) -> list[tuple[str, Any]]:
    """(key, child) pairs of one container node."""
    if _is_namedtuple(tree):
        return list(zip(tree._fields, tree))
    if isinstance(tree, (tuple, list)):
        return [(str(k), child) for k, child in enumerate(tree)]
    if isinstance(tree, dict):
        bad = [k for k in tree if not isinstance(k, str) or not k or "." in k]
        if bad:
            raise ValueError(f"tree {where or '<root>'}: expected non-empty str dict keys "
                             f"without '.', got {bad!r}")
        return list(tree.items())
    raise ValueError(f"tree {where or '<root>'}: expected an array, NamedTuple, tuple, list or "
                     f"dict, got {type(tree).__name__}")


def _rebuild(tree, children: list):
    """A container of the same kind as `tree` with new children (in the order of _children)."""
    if _is_namedtuple(tree):
        return type(tree)(*children)
    if isinstance(tree, tuple):
        return tuple(children)
    if isinstance(tree, list):
        return list(children)
    return dict(zip(tree.keys(), children))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def tree_leaves(tree, prefix: str = "") -> list[tuple[str, Any]]:
    """Flat list of (name, array) in field order. A bare array at the root is named `prefix`."""
    if is_leaf(tree):
        return [(prefix, tree)]
    out = []
    for key, child in _children(tree, prefix):
        out.extend(tree_leaves(child, _join(prefix, key)))
    return out


def tree_unflatten(like, arrays) -> Any:
    """Inverse of tree_leaves: a tree shaped like `like` whose leaves are `arrays`, in order.

    `arrays` is a sequence of arrays, or of (name, array) pairs whose names must match.
    """
    arrays = list(arrays)
    names = [name for name, _ in tree_leaves(like)]
    if len(arrays) != len(names):
        raise ValueError(f"tree_unflatten: expected {len(names)} arrays, got {len(arrays)}")
    if arrays and isinstance(arrays[0], tuple):
        got = [name for name, _ in arrays]
        if got != names:
            raise ValueError(f"tree_unflatten: expected leaf names {names}, got {got}")
        arrays = [a for _, a in arrays]
    it = iter(arrays)

    def build(node, where):
        if is_leaf(node):
            return next(it)
        return _rebuild(node, [build(child, _join(where, key)) for key, child in _children(node, where)])

    return build(like, "")


def tree_map(fn: Callable, *trees) -> Any:
    """Apply fn leaf-wise to trees of one structure; the result has the first tree's structure."""
    if not trees:
        raise ValueError("tree_map: expected at least one tree, got none")

    def walk(nodes, where):
        first = nodes[0]
        if is_leaf(first):
            if not all(is_leaf(n) for n in nodes):
                raise ValueError(f"tree_map {where or '<root>'}: expected arrays in every tree, "
                                 f"got {[type(n).__name__ for n in nodes]}")
            return fn(*nodes)
        kids = [_children(n, where) if not is_leaf(n) else None for n in nodes]
        keys = [k for k, _ in kids[0]]
        for n, kid in zip(nodes[1:], kids[1:]):
            if kid is None or type(n) is not type(first) or [k for k, _ in kid] != keys:
                raise ValueError(f"tree_map {where or '<root>'}: expected {type(first).__name__} "
                                 f"with keys {keys}, got {type(n).__name__}"
                                 + ("" if kid is None else f" with keys {[k for k, _ in kid]}"))
        children = [walk([kid[i][1] for kid in kids], _join(where, keys[i])) for i in range(len(keys))]
        return _rebuild(first, children)

    return walk(list(trees), "")


def tree_zeros_like(tree) -> Any:
    """Zeros of the same shapes and dtypes (same array module)."""
    return tree_map(lambda a: array_module(a).zeros(a.shape, a.dtype), tree)


def tree_size(tree) -> int:
    """Total number of scalars in the tree."""
    return sum(int(a.size) for _, a in tree_leaves(tree))
