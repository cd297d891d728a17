"""Spec strings and typed options.

Grammar (whitespace is not allowed anywhere):

    spec    := family ":" name [ "?" option ( "&" option )* ]
    option  := key "=" value
    family  := [a-z]+                      e.g. atari, procgen, dmlab, gym, popgym, memory
    name    := any characters but "?"      e.g. Breakout, chaser, rooms_watermaze, CartPole-v1
    value   := any characters but "&"      lists are comma separated: hide=1,3

Options can also be given as keyword arguments of `envs.make`; giving the same option in the
spec and as a keyword is an error (never a silent override). Spec values are strings and are
converted by each family's option table (`Option`); keyword values may be strings or already
typed Python values. Unknown options and bad values raise ValueError naming the option, the
expected value and the value given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_FAMILY = re.compile(r"[a-z][a-z0-9_]*")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Spec:
    """A parsed spec string: `family:name?key=value&...` (options kept as strings)."""

    family: str
    name: str
    options: Mapping[str, str]

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.family}:{self.name}" + (f"?{query}" if query else "")


def parse_spec(text: str) -> Spec:
    """Split a spec string into family, name and string options; ValueError when malformed."""
    if not isinstance(text, str):
        raise ValueError(f"spec: expected a string like 'atari:Breakout', got {text!r}")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"spec: no whitespace allowed, got {text!r}")
    family, sep, rest = text.partition(":")
    if not sep or not _FAMILY.fullmatch(family):
        raise ValueError(f"spec: expected 'family:name[?key=value&...]', got {text!r}")
    name, _, query = rest.partition("?")
    if not name:
        raise ValueError(f"spec: missing the name after '{family}:', got {text!r}")
    options: dict[str, str] = {}
    for item in query.split("&") if query else ():
        key, eq, value = item.partition("=")
        if not eq or not _KEY.fullmatch(key) or not value:
            raise ValueError(f"spec: expected option 'key=value', got {item!r} in {text!r}")
        if key in options:
            raise ValueError(f"spec: option {key!r} given twice in {text!r}")
        options[key] = value
    return Spec(family, name, options)


@dataclass(frozen=True)
class Option:
    """One typed option of a family: its name, kind, default and a one-line doc.

    kind is one of "int", "float", "bool", "str", "ints" (tuple of ints) or "object"
    (keyword argument only, passed through unchanged). `choices` restricts str options,
    `low`/`high` bound numbers (inclusive).
    """

    name: str
    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None

    def convert(self, value: Any, where: str) -> Any:
        """Return `value` converted to this option's kind; ValueError naming the option."""
        def bad(expected: str) -> ValueError:
            return ValueError(f"{where}: option {self.name!r} expects {expected}, got {value!r}")

        if self.kind == "object":
            return value
        if self.kind == "bool":
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            text = str(value).lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise bad("a boolean (true/false, 1/0, yes/no, on/off)")
        if self.kind == "ints":
            items = value.split(",") if isinstance(value, str) else value
            try:
                out = tuple(_to_int(v) for v in items)
            except (TypeError, ValueError):
                raise bad("a comma-separated list of integers") from None
            for v in out:
                self._check_range(v, bad)
            return out
        if self.kind == "int":
            try:
                out = _to_int(value)
            except (TypeError, ValueError):
                raise bad("an integer") from None
            self._check_range(out, bad)
            return out
        if self.kind == "float":
            if isinstance(value, bool):
                raise bad("a number")
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise bad("a number") from None
            self._check_range(out, bad)
            return out
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad("a string")
            if self.choices is not None and value not in self.choices:
                raise bad(f"one of {list(self.choices)}")
            return value
        raise AssertionError(f"unknown option kind {self.kind!r}")

    def _check_range(self, v: float, bad) -> None:
        if self.low is not None and v < self.low:
            raise bad(f"a value >= {self.low}")
        if self.high is not None and v > self.high:
            raise bad(f"a value <= {self.high}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool is not an integer option value")
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not an integer")
    return int(value)


def resolve_options(table: tuple[Option, ...], from_spec: Mapping[str, str],
                    from_kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Merge spec and keyword options over the table's defaults, converted by the table.

    Unknown keys and a key given both in the spec and as a keyword raise ValueError. A default
    of None means "decided by the family" (e.g. by Atari's protocol preset).
    """
    known = {opt.name: opt for opt in table}
    both = sorted(set(from_spec) & set(from_kwargs))
    if both:
        raise ValueError(f"{where}: option(s) {both} given both in the spec and as keywords")
    given = {**from_spec, **from_kwargs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown option(s) {unknown}; known options: {sorted(known)}")
    out = {name: opt.default for name, opt in known.items()}
    for key, value in given.items():
        out[key] = known[key].convert(value, where)
    return out


def options_doc(table: tuple[Option, ...]) -> str:
    """A plain-text table of the options (for error messages and docs)."""
    return "\n".join(f"  {o.name} ({o.kind}, default {o.default!r}): {o.doc}" for o in table)
