"""`--set KEY=VALUE`: the one override parser, for every verb.

A value is written in .nn syntax and evaluated like the file's own compile-time
expressions, so ``--set hidden=2*64`` means the same to ``summary``, ``graph``,
``check`` and ``train``. Model arguments come from the file's ``train Model(...)``
header first and ``--set`` second (:func:`model_overrides`); train settings
(``epochs=5``, ``optimizer.lr=3e-3``) are resolved by the train section on top of
:func:`split_set` and :func:`parse_override`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nnlang.diagnostics import Diagnostic, NNError, Reporter, Sources, Span
from nnlang.graph.evaluate import evaluate, word_or_value
from nnlang.graph.program import Program
from nnlang.syntax import ast as A


def split_set(item: str) -> tuple[str, str]:
    """``"key=value"`` as ``("key", "value")``, or E406."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise NNError(Diagnostic("E406", f"`--set {item}` needs the form key=value", None))
    return key.strip(), value.strip()


def parse_override(key: str, value: str, sources: Sources | None = None) -> A.Expr:
    """The expression of ``--set key=value`` (``0.01``, ``adam(lr = 0.01)``, ``[accuracy]``).
    With ``sources``, diagnostics about the value show it with a caret."""
    from nnlang.syntax.parser import parse

    text = f"train _ {{ {key} = {value} }}"
    name = f"--set {key}"
    if sources is not None:
        sources.add(name, text)
    try:
        module = parse(text, name)
    except NNError as e:
        raise NNError(
            Diagnostic(
                "E406",
                f"cannot read `--set {key}={value}`: {e.diagnostics[0].message}",
                None,
                help='values use .nn syntax: 0.01, "text", 2 * 64, adam(lr = 0.01), [accuracy]',
            )
        ) from None
    setting = module.trains[0].settings[0]
    assert isinstance(setting, A.Setting)
    return setting.value


def setting_value(program: Program | None, expr: A.Expr) -> Any:
    """The compile-time value of an override (a bare word is a string, as in the file's
    train section: ``--set monitor=val_loss``)."""
    rep = Reporter()
    v = word_or_value(expr, rep, program)
    if rep.errors:
        raise NNError(rep.diagnostics)
    return v


def model_sets(program: Program | None, items: Iterable[str]) -> dict[str, Any]:
    """``--set PARAM=VALUE`` items as model arguments (values are compile-time
    expressions: ``hidden=2*64``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = split_set(item)
        sources = program.sources if program is not None else None
        out[key] = setting_value(program, parse_override(key, value, sources))
    return out


def model_overrides(
    program: Program, model: str, extra: Mapping[str, Any] | None = None
) -> dict[str, tuple[Any, Span | None]]:
    """Model arguments: those of the file's `train Model(...)` header, then ``extra``."""
    out: dict[str, tuple[Any, Span | None]] = {}
    train = program.train_for(model)
    if train is not None:
        rep = Reporter()
        decl = program.decls.get(model)
        for i, a in enumerate(train.args):
            if decl is not None and i < len(decl.params):
                out[decl.params[i].name] = (evaluate(a, rep, program), a.span)
        for k in train.kwargs:
            out[k.name] = (evaluate(k.value, rep, program), k.name_span)
        if rep.errors:
            raise NNError(rep.diagnostics)
    for key, v in (extra or {}).items():
        out[key] = (v, None)
    return out
