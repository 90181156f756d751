"""Declarations behind the train section's named calls.

Every catalogue (data sources, normalizers, augmentations, losses, optimizers,
schedules, metrics) maps a name to an :class:`Entry`: a doc string, documented
:class:`~nnlang.signature.Param` s and the function that does the work. Calls bind
through the one binder of :mod:`nnlang.signature` (the same codes and wording as layer
arguments), and the docs are generated from the declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.signature import (  # noqa: F401 - the catalogues' vocabulary, re-exported
    REQUIRED,
    Param,
    bind_or_raise,
    check_value,
    format_value,
    signature_text,
)


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
        return signature_text(self.name, self.params)


Catalog = Mapping[str, Entry]


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
    """Bind a call's arguments to ``entry``'s params (:func:`nnlang.signature.bind`);
    the first problem is raised."""
    return bind_or_raise(f"`{entry.name}`", entry.params, args, kwargs, usage=entry.signature())


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


def named_inputs(named: Any, known: Sequence[str], what: str) -> list[str] | None:
    """The model inputs a call's ``inputs = ...`` argument names (one name or a list;
    None when it names none, meaning its default); E403 for a name in none of ``known``.
    ``what`` starts the message: "`normalize`", "augmentation `flip`"."""
    if named is None:
        return None
    names = [named] if isinstance(named, str) else list(named)
    for n in names:
        if n not in known:
            raise ArgError(
                "E403",
                f"{what} names `{n}`, which is not a model input",
                help=did_you_mean(str(n), list(known)) or f"inputs: {', '.join(known)}",
            )
    return names
