"""Declarations behind the train section's named calls, and argument binding.

Every catalogue (data sources, normalizers, augmentations, losses, optimizers,
schedules, metrics) maps a name to an :class:`Entry`: a doc string, documented
:class:`Param` s and the function that does the work. One :func:`bind` checks a call
for all of them, so the messages and codes are the same everywhere and the docs can be
generated from the declarations.

Codes follow the layer-argument binder: E104 unknown argument, E105 missing, E106
given twice, E107 too many positional, E201 wrong type, E202 out of range, E403 not one
of the allowed choices. Each :class:`~nnlang.diagnostics.ArgError` names the argument
at fault (``arg``) so the caller can point at it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnlang.diagnostics import ArgError, did_you_mean


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

#: Value types a parameter may declare.
#: ``number``: int or float, kept as given (``warmup`` is steps if int, a fraction if
#: float). ``column``: a column name (str) or 0-based index (int). ``columns``: a list
#: of those. ``strs``: a list of str. ``any``: not checked.
PARAM_TYPES = ("int", "float", "number", "bool", "str", "column", "columns", "strs", "any")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    #: True: the bound is excluded (``min_open`` for "> 0" instead of ">= 0").
    min_open: bool = False
    max_open: bool = False
    #: may not be given positionally
    kw_only: bool = False

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"unknown param type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str | None:
        if self.min is None and self.max is None:
            return None
        lo = "-inf" if self.min is None else _num(self.min)
        hi = "inf" if self.max is None else _num(self.max)
        left = "(" if self.min_open or self.min is None else "["
        right = ")" if self.max_open or self.max is None else "]"
        return f"{left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Entry:
    """One named thing a train setting can call."""

    name: str
    doc: str
    params: tuple[Param, ...]
    fn: Callable[..., Any]
    #: catalogue-specific facts (a metric's direction, a loss's tensor inputs, ...)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def signature(self) -> str:
        """``adamw(lr = 0.001, weight_decay = 0.0001)``: for docs and help texts."""
        parts = []
        for p in self.params:
            parts.append(p.name if p.required else f"{p.name} = {format_value(p.default)}")
        return f"{self.name}({', '.join(parts)})" if parts else self.name


Catalog = Mapping[str, Entry]


def format_value(v: Any) -> str:
    """A value as it would be written in a .nn file."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, float):
        return _num(v)
    return str(v)


def _num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def lookup(catalog: Catalog, name: str, kind_word: str) -> Entry:
    """The entry called ``name``, or E405 naming the closest known one."""
    entry = catalog.get(name)
    if entry is not None:
        return entry
    plural = kind_word[:-1] + "ies" if kind_word.endswith("y") else kind_word + "s"
    hint = did_you_mean(name, catalog) or f"known {plural}: {', '.join(sorted(catalog))}"
    raise ArgError("E405", f"unknown {kind_word} `{name}`", help=hint)


def bind(
    entry: Entry, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Bind a call's arguments to ``entry``'s params: every param present, checked.

    Positional arguments fill params in declaration order (``kw_only`` ones excepted);
    defaults fill the rest. An int given where a float is declared becomes a float.
    """
    kwargs = dict(kwargs or {})
    positional = [p for p in entry.params if not p.kw_only]
    if len(args) > len(positional):
        raise ArgError(
            "E107",
            f"`{entry.name}` takes at most {len(positional)} positional argument"
            f"{'' if len(positional) == 1 else 's'} but got {len(args)}",
            help=f"usage: {entry.signature()}",
        )
    given: dict[str, Any] = {}
    for p, v in zip(positional, args, strict=False):
        given[p.name] = v
    names = [p.name for p in entry.params]
    for k, v in kwargs.items():
        if k not in names:
            hint = did_you_mean(k, names) or (
                f"`{entry.name}` takes {', '.join(f'`{n}`' for n in names)}"
                if names
                else f"`{entry.name}` takes no arguments"
            )
            raise ArgError("E104", f"`{entry.name}` has no argument `{k}`", arg=k, help=hint)
        if k in given:
            raise ArgError(
                "E106",
                f"argument `{k}` of `{entry.name}` given twice",
                arg=k,
                help="it was already given positionally",
            )
        given[k] = v
    out: dict[str, Any] = {}
    for p in entry.params:
        if p.name in given:
            out[p.name] = check_value(entry.name, p, given[p.name])
        elif p.required:
            raise ArgError(
                "E105",
                f"`{entry.name}` needs the argument `{p.name}`",
                arg=p.name,  # not in the source: the caller falls back to the call
                help=f"usage: {entry.signature()}",
            )
        else:
            out[p.name] = p.default
    return out


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
    "column": "a column name or index",
    "columns": "a list of column names or indices",
    "strs": "a list of strings",
}


def _type_ok(t: str, v: Any) -> bool:
    if t == "any":
        return True
    if t == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool):  # bool is an int in Python; never accept it as a number
        return False
    if t == "int":
        return isinstance(v, int)
    if t in ("float", "number"):
        return isinstance(v, (int, float))
    if t == "str":
        return isinstance(v, str)
    if t == "column":
        return isinstance(v, (int, str))
    if t == "columns":
        return isinstance(v, (list, tuple)) and all(_type_ok("column", x) for x in v)
    if t == "strs":
        return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
    return False  # pragma: no cover


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an int"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if v is None:
        return "none"
    return type(v).__name__


def check_value(owner: str, p: Param, v: Any) -> Any:
    """Type-, range- and choice-check one value of ``p``; returns it normalised."""
    if v is None and p.default is None:
        return None  # an optional parameter left unset explicitly
    if not _type_ok(p.type, v):
        raise ArgError(
            "E201",
            f"`{p.name}` of `{owner}` must be {_TYPE_WORDS.get(p.type, p.type)}, "
            f"not {_type_name(v)} ({format_value(v)})",
            arg=p.name,
        )
    if p.type == "float":
        v = float(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ArgError("E202", f"`{p.name}` of `{owner}` must be finite", arg=p.name)
    if isinstance(v, (tuple, list)):
        v = list(v)
    if p.choices is not None and v not in p.choices:
        hint = (
            did_you_mean(v, [c for c in p.choices if isinstance(c, str)])
            if isinstance(v, str)
            else None
        )
        raise ArgError(
            "E403",
            f"`{p.name}` of `{owner}` must be one of "
            f"{', '.join(format_value(c) for c in p.choices)}, not {format_value(v)}",
            arg=p.name,
            help=hint,
        )
    if isinstance(v, (int, float)) and not _in_range(p, v):
        raise ArgError(
            "E202",
            f"`{p.name}` of `{owner}` must be in {p.range_text()} but got {format_value(v)}",
            arg=p.name,
        )
    return v


def _in_range(p: Param, v: float) -> bool:
    if p.min is not None and (v < p.min or (p.min_open and v == p.min)):
        return False
    if p.max is not None and (v > p.max or (p.max_open and v == p.max)):
        return False
    return True


def resolve(
    catalog: Catalog,
    kind_word: str,
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[Entry, dict[str, Any]]:
    """:func:`lookup` then :func:`bind`: the common first step of every ``make_*``."""
    entry = lookup(catalog, name, kind_word)
    return entry, bind(entry, args, kwargs)


def declare(
    catalog: dict[str, Entry], name: str, doc: str, *params: Param, **extra: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register the decorated function as ``catalog[name]``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in catalog:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"{name!r} declared twice")
        catalog[name] = Entry(name, doc, tuple(params), fn, dict(extra))
        return fn

    return register
