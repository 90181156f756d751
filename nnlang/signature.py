"""Signatures: declared parameters, and the one binder every argument list goes through.

Layer attributes, model and block parameters, train settings and every train-section
catalogue (data sources, losses, optimizers, ...) declare their parameters as
:class:`Param` records, and :func:`bind` checks a call against them. So a mistake is
worded one way and has one code wherever it is made:

- E104 unknown argument, E105 missing, E106 given twice, E107 too many positional;
- E201 wrong type; E202 out of range, not finite, or not one of the allowed choices.

Nothing here knows source spans. Each problem is an :class:`~nnlang.diagnostics.ArgError`
naming the argument at fault (``arg``), the positional ``index`` where there is one,
and ``at``: whether to point at the argument's name (``"name"``), its value
(``"value"``) or the whole call (``"call"``). The caller turns it into a located
diagnostic.
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


#: The default of a parameter that must be given.
REQUIRED: Any = _Required()

#: Value types a parameter may declare, and how a message names them.
#: ``number``: int or float, kept as given (``warmup`` is steps if int, a fraction if
#: float). ``ints``: an int or a tuple of ints (kernel sizes, strides). ``padding``:
#: "same", "valid", a non-negative int or a tuple of them. ``shape``: a tuple of ints.
#: ``column``: a column name or 0-based index; ``columns``: a list of those. ``strs``: a
#: list of strings. ``name``: a bare word or a string (``monitor = val_loss``). ``any``: not
#: checked.
TYPE_WORDS: dict[str, str] = {
    "int": "an integer",
    "float": "a number",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
    "name": "a name or a string",
    "ints": "an integer or a tuple of integers",
    "padding": '"same", "valid", a non-negative integer or a tuple of them',
    "shape": "a tuple of integers",
    "column": "a column name or index",
    "columns": "a list of column names or indices",
    "strs": "a list of strings",
    "any": "any value",
}


@dataclass(frozen=True)
class Param:
    """One declared parameter: its name, type, default and the values it admits."""

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
    #: where the parameter is declared (model and block parameters), for "declared here"
    span: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.type not in TYPE_WORDS:  # pragma: no cover - a bug in nnlang
            raise ValueError(f"unknown parameter type {self.type!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str | None:
        """``[0, 1)``-style interval, or None when unbounded."""
        if self.min is None and self.max is None:
            return None
        lo = "-inf" if self.min is None else _num(self.min)
        hi = "inf" if self.max is None else _num(self.max)
        left = "(" if self.min_open or self.min is None else "["
        right = ")" if self.max_open or self.max is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def range_words(self) -> str:
        """The admitted range as a message says it: "at least 1", "in [0, 1)"."""
        if self.min is not None and self.max is not None:
            return f"in {self.range_text()}"
        if self.min is not None:
            return f"{'greater than' if self.min_open else 'at least'} {_num(self.min)}"
        if self.max is not None:
            return f"{'less than' if self.max_open else 'at most'} {_num(self.max)}"
        return "any number"  # pragma: no cover - only called with a bound


def signature_text(name: str, params: Sequence[Param]) -> str:
    """``adamw(lr = 0.001, weight_decay = 0.0001)``: for usage hints and docs."""
    parts = [p.name if p.required else f"{p.name} = {format_value(p.default)}" for p in params]
    return f"{name}({', '.join(parts)})" if parts else name


def format_value(v: Any) -> str:
    """A value as it would be written in a .nn file."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "(" + ", ".join(format_value(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, float):
        return _num(v)
    return str(v)


def _num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def type_name(v: Any) -> str:
    """What a value is, with its article: "an int", "a list", "none"."""
    if isinstance(v, bool):
        return "a bool"
    if isinstance(v, int):
        return "an int"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list" if isinstance(v, list) else "a tuple"
    if v is None:
        return "none"
    return type(v).__name__


def describe(v: Any) -> str:
    """A value as a message names it: ``a float (2.5)``."""
    if v is None:
        return "none"
    shown = repr(v) if isinstance(v, float) else format_value(v)  # 32.0, not 32
    return f"{type_name(v)} ({shown})"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _of(p: Param, owner: str | None) -> str:
    return f"`{p.name}` of {owner}" if owner else f"`{p.name}`"


def check_value(
    owner: str | None, p: Param, v: Any, *, describe: Callable[[Any], str] = describe
) -> Any:
    """Type-, range- and choice-check one value of ``p``; returns it normalised.

    ``owner`` is how the message names what ``p`` belongs to ("`dense`", "model
    `Net`"), or None for a train setting. ``describe`` names a wrong value (the graph
    builder names tensors its own way).
    """
    t = p.type
    if v is None and p.default is None:
        return None  # an optional parameter left unset explicitly

    def bad() -> ArgError:
        hint = p.doc or None
        if t in ("int", "ints", "shape") and isinstance(v, float) and v.is_integer():
            hint = "`/` always gives a float: use `//` for integer division, or `int(...)`"
        return ArgError(
            "E201",
            f"{_of(p, owner)} must be {TYPE_WORDS[t]}, not {describe(v)}",
            arg=p.name,
            help=hint,
        )

    def out_of_range(x: Any) -> ArgError:
        return ArgError(
            "E202",
            f"{_of(p, owner)} must be {p.range_words()}, not {format_value(x)}",
            arg=p.name,
            help=p.doc or None,
        )

    if t == "any":
        return v
    if t == "int" and not _is_int(v):
        raise bad()
    if t in ("float", "number"):
        if not (_is_int(v) or isinstance(v, float)):
            raise bad()
        if t == "float":
            v = float(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise ArgError("E202", f"{_of(p, owner)} must be finite", arg=p.name)
    if t == "bool" and not isinstance(v, bool):
        raise bad()
    if t in ("str", "name") and not isinstance(v, str):
        raise bad()
    if t == "column" and not (_is_int(v) or isinstance(v, str)):
        raise bad()
    if t == "columns":
        if not (isinstance(v, (list, tuple)) and all(_is_int(x) or isinstance(x, str) for x in v)):
            raise bad()
        v = list(v)
    if t == "strs":
        if not (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)):
            raise bad()
        v = list(v)
    if t == "ints":
        if _is_int(v):
            items: tuple[Any, ...] = (v,)
        elif isinstance(v, (tuple, list)) and v and all(_is_int(x) for x in v):
            v = items = tuple(v)
        else:
            raise bad()
        for x in items:
            if not _in_range(p, x):
                raise out_of_range(v)
        return v
    if t == "padding":
        if isinstance(v, str):
            if v.lower() not in ("same", "valid"):
                raise ArgError(
                    "E202",
                    f"{_of(p, owner)} must be {TYPE_WORDS[t]}, not {format_value(v)}",
                    arg=p.name,
                    help=did_you_mean(v, ["same", "valid"]),
                )
            return v.lower()
        if _is_int(v) and v >= 0:
            return v
        if isinstance(v, (tuple, list)) and v and all(_is_int(x) and x >= 0 for x in v):
            return tuple(v)
        raise bad()
    if t == "shape":
        if _is_int(v):
            v = (v,)
        if not (isinstance(v, (tuple, list)) and all(_is_int(x) for x in v)):
            raise bad()
        return tuple(v)
    if p.choices is not None and v not in p.choices:
        strs = [c for c in p.choices if isinstance(c, str)]
        raise ArgError(
            "E202",
            f"{_of(p, owner)} must be one of "
            f"{', '.join(format_value(c) for c in p.choices)}, not {format_value(v)}",
            arg=p.name,
            help=did_you_mean(v, strs) if isinstance(v, str) else None,
        )
    if isinstance(v, (int, float)) and not isinstance(v, bool) and not _in_range(p, v):
        raise out_of_range(v)
    return v


def _in_range(p: Param, v: float) -> bool:
    if p.min is not None and (v < p.min or (p.min_open and v == p.min)):
        return False
    if p.max is not None and (v > p.max or (p.max_open and v == p.max)):
        return False
    return True


def _misspelled(name: str, unknown: Sequence[str]) -> bool:
    """True when one of the unknown keywords looks like ``name`` (E104 said so)."""
    return any(did_you_mean(u, [name]) for u in unknown)


@dataclass
class Bound:
    """What :func:`bind` made of a call: every parameter's value, and the problems."""

    values: dict[str, Any]
    errors: list[ArgError]
    #: a value was unusable (an earlier mistake), though no new problem was found
    failed: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed


def _where(err: ArgError, at: str, index: int | None = None) -> ArgError:
    err.at = at
    err.index = index
    return err


def bind(
    owner: str,
    params: Sequence[Param],
    args: Sequence[Any] = (),
    kwargs: Sequence[tuple[str, Any]] | Mapping[str, Any] = (),
    *,
    noun: str = "argument",
    usage: str | None = None,
    fill: Callable[[Param, Mapping[str, Any]], Any] | None = None,
    unusable: Callable[[Any], bool] = lambda v: False,
    describe: Callable[[Any], str] = describe,
) -> Bound:
    """Bind a call's arguments to ``params``: every parameter present, each checked.

    Positional arguments fill parameters in declaration order (``kw_only`` ones
    excepted); keywords by name; defaults the rest (``fill(param, bound_so_far)``
    computes a default where the declaration holds an expression). All problems are
    collected, not just the first. ``unusable`` values (an earlier mistake's poison)
    fail the binding without a new message.
    """
    items = list(kwargs.items()) if isinstance(kwargs, Mapping) else list(kwargs)
    names = [p.name for p in params]
    positional = [p for p in params if not p.kw_only]
    plural = f"{noun}s"
    errors: list[ArgError] = []
    if len(args) > len(positional):
        n = len(positional)
        too_many = ArgError(
            "E107",
            f"{owner} takes at most {n} positional {noun if n == 1 else plural} "
            f"but got {len(args)}",
            help=f"usage: {usage}" if usage else None,
        )
        return Bound({}, [_where(too_many, "value", n)])
    given: dict[str, Any] = {}
    index: dict[str, int] = {}
    for i, (p, v) in enumerate(zip(positional, args, strict=False)):
        given[p.name] = v
        index[p.name] = i
    unknown: list[str] = []
    for k, v in items:
        if k not in names:
            hint = did_you_mean(k, names) or (
                f"{owner} takes {', '.join(f'`{n}`' for n in names)}"
                if names
                else f"{owner} takes no {plural}"
            )
            errors.append(
                _where(ArgError("E104", f"{owner} has no {noun} `{k}`", arg=k, help=hint), "name")
            )
            unknown.append(k)
        elif k in given:
            errors.append(
                _where(
                    ArgError(
                        "E106",
                        f"{noun} `{k}` of {owner} given twice",
                        arg=k,
                        help="it was already given positionally",
                    ),
                    "name",
                    index.get(k),
                )
            )
        else:
            given[k] = v
    out: dict[str, Any] = {}
    failed = False
    for p in params:
        if p.name in given:
            v = given[p.name]
        elif p.required:
            if not _misspelled(p.name, unknown):  # else E104 already said "did you mean"
                needs = f"usage: {usage}" if usage else (f"{p.name}: {p.doc}" if p.doc else None)
                errors.append(
                    _where(
                        ArgError(
                            "E105", f"{owner} needs the {noun} `{p.name}`", arg=p.name, help=needs
                        ),
                        "call",
                    )
                )
            else:
                failed = True
            continue
        elif fill is None:
            out[p.name] = p.default  # a declared default is right by construction
            continue
        else:
            v = fill(p, out)
        if unusable(v):
            failed = True
            continue
        if p.name not in given:
            out[p.name] = v  # later defaults may read it, even if it fails its check
        try:
            out[p.name] = check_value(owner, p, v, describe=describe)
        except ArgError as e:
            errors.append(_where(e, "value", index.get(p.name)))
    return Bound(out, errors, failed)


def bind_or_raise(
    owner: str,
    params: Sequence[Param],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """:func:`bind` for callers that report one mistake: raise the first problem."""
    b = bind(owner, params, args, kwargs or {}, **kw)
    if b.errors:
        raise b.errors[0]
    return b.values


def locate(
    err: ArgError,
    *,
    call: Any,
    positional: Sequence[Any] = (),
    names: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Any:
    """Where a binding problem points, given the call's spans: the span of the
    positional argument (``positional[i]``), of a keyword's name (``names``) or of a
    value (``values``, by parameter name), falling back to the whole ``call``."""
    names, values = names or {}, values or {}
    if err.at == "name" and err.arg is not None and err.arg in names:
        return names[err.arg]
    if err.at == "call":
        return call
    if err.index is not None and err.index < len(positional):
        return positional[err.index]
    if err.arg is not None and values.get(err.arg) is not None:
        return values[err.arg]
    return call
