"""Element-wise math: a tensor with a number (``x * 0.5``, ``1 - p``, ``x ** 2``),
negation, and one-input functions (``exp``, ``log``, ``sqrt``, ``abs``, ``clip``, ...).

The operators of the language become these kinds (see ``nnlang/graph/tensorops.py``):
``x op c`` is ``<op>_scalar(c)`` and ``c op x`` is ``<op>_scalar(c, reverse = true)``
where the order matters. The dtype rule is JAX's weak typing made explicit: a number
takes the tensor's dtype (an f16 or bf16 tensor stays f16 or bf16), an integer tensor
takes integer numbers only (a float number is E304: cast first), and booleans take no
arithmetic. Imports only the layer base and shapes; build rules import JAX lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnlang.diagnostics import ArgError
from nnlang.layers.base import Args, Attr, fail, layer
from nnlang.shapes import TensorType, concrete_numel

FAMILY = "elementwise"

#: The operator each tensor-with-number kind is written as.
OPERATORS = {
    "add_scalar": "+",
    "sub_scalar": "-",
    "mul_scalar": "*",
    "div_scalar": "/",
    "pow_scalar": "**",
}

#: The values an integer dtype holds (a number outside them would wrap or fail in JAX).
INT_RANGES = {
    "i8": (-(2**7), 2**7 - 1),
    "u8": (0, 2**8 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
}

CAST_HELP = 'cast it first, e.g. `x -> cast("f32")`'


def numeric(kind: str, x: TensorType, what: str = "") -> None:
    """E304 for a bool tensor: booleans take no arithmetic."""
    if x.dtype == "bool":
        raise ArgError(
            "E304",
            f"{what or f'`{kind}`'} is not defined for the boolean tensor {x}",
            help=CAST_HELP,
        )


def float_input(kind: str, x: TensorType, what: str = "") -> None:
    if not x.is_float:
        raise ArgError(
            "E304",
            f"{what or f'`{kind}`'} needs a floating-point tensor but got {x}",
            help=CAST_HELP,
        )


def number_fits(what: str, x: TensorType, value: Any, arg: str) -> None:
    """A number combined with ``x`` must keep its dtype: an integer tensor takes
    integers (in its range), a float tensor any finite number."""
    if x.is_float or value is None:
        return
    if isinstance(value, float):
        raise ArgError(
            "E304",
            f"{what} between the integer tensor {x} and the float {value}: an integer "
            "tensor takes integer numbers only",
            arg=arg,
            help=CAST_HELP,
        )
    lo, hi = INT_RANGES.get(x.dtype, (None, None))
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise ArgError(
            "E202",
            f"{what}: {value} does not fit the {x.dtype} tensor {x} ({lo} to {hi})",
            arg=arg,
            help=CAST_HELP,
        )


def _elements(a: Args, ins: list[TensorType], outs: list[TensorType]) -> int:
    return concrete_numel(outs[0].shape)


# -------------------------------------------------------- tensor with a number
_VALUE = Attr("value", "number", doc="the number (an integer or a float)")
_REVERSE = Attr(
    "reverse", "bool", False, doc="the number is on the left: `value op x` instead of `x op value`"
)


def _scalar_kind(name: str, fn: str, what: str, *, reverse: bool, float_only: bool) -> None:
    op = OPERATORS[name]

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        import jax.numpy as jnp

        f = getattr(jnp, fn)
        v = a.value  # a Python number: weakly typed, it takes the tensor's dtype
        if a.get("reverse", False):
            return lambda x: f(v, x)
        return lambda x: f(x, v)

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        x = ins[0]
        rev = a.get("reverse", False)
        written = f"`{a.value} {op} x`" if rev else f"`x {op} {a.value}`"
        numeric(name, x, f"{written} (`{name}`)")
        if float_only:
            float_input(name, x, f"{written} (`{name}`)")
        number_fits(f"`{op}`", x, a.value, "value")
        if name == "div_scalar" and not rev and a.value == 0:
            raise fail("division by zero", arg="value", code="E202")
        if name == "pow_scalar" and not rev and not x.is_float and a.value < 0:
            raise fail(
                f"an integer tensor {x} to the negative power {a.value}",
                arg="value",
                code="E202",
                help=CAST_HELP,
            )
        return [x]

    attrs = (_VALUE, _REVERSE) if reverse else (_VALUE,)
    layer(
        name,
        family=FAMILY,
        doc=f"{what}; `x {op} c` in an expression"
        + (f" (`c {op} x` with `reverse = true`)" if reverse else f" (and `c {op} x`)")
        + ". The number takes the tensor's dtype"
        + (
            "; floating-point tensors only."
            if float_only
            else "; an integer tensor takes integers."
        ),
        attrs=attrs,
        flops=_elements,
        build=build,
        example=f"""model Example {{
    input x: f32[8]
    output y = x -> {name}(2)
}}""",
    )(shape)


_scalar_kind("add_scalar", "add", "Add a number to every element", reverse=False, float_only=False)
_scalar_kind(
    "sub_scalar", "subtract", "Subtract a number from every element", reverse=True, float_only=False
)
_scalar_kind(
    "mul_scalar", "multiply", "Multiply every element by a number", reverse=False, float_only=False
)
_scalar_kind(
    "div_scalar", "divide", "Divide every element by a number", reverse=True, float_only=True
)
_scalar_kind(
    "pow_scalar", "power", "Raise every element to a number", reverse=True, float_only=False
)


# ------------------------------------------------------- one-input functions
Check = Callable[[str, TensorType], None]


def _unary(
    name: str,
    doc: str,
    fn: str,
    *,
    check: Check = float_input,
    attrs: tuple[Attr, ...] = (),
    kwargs: Callable[[Args], dict[str, Any]] = lambda a: {},
    make: Callable[[Args], Any] | None = None,
    extra: Callable[[Args, TensorType], None] = lambda a, x: None,
    call: str = "",
    input_type: str = "f32[8]",
) -> None:
    """Declare ``name`` lowering to ``jax.numpy.<fn>(x, **kwargs(args))``."""

    def build(a: Args, ins: list[TensorType], rngs: Any) -> Any:
        import functools

        import jax.numpy as jnp

        if make is not None:
            return make(a)
        return functools.partial(getattr(jnp, fn), **kwargs(a))

    def shape(a: Args, ins: list[TensorType]) -> list[TensorType]:
        check(name, ins[0])
        extra(a, ins[0])
        return [ins[0]]

    layer(
        name,
        family=FAMILY,
        doc=doc,
        attrs=attrs,
        flops=_elements,
        build=build,
        example=f"""model Example {{
    input x: {input_type}
    output y = x -> {call or name}
}}""",
    )(shape)


_unary(
    "neg",
    "Negate every element, `-x` in an expression (`jnp.negative`).",
    "negative",
    check=lambda kind, x: numeric(kind, x, "`-x` (`neg`)"),
)
_unary("exp", "Exponential, `e ** x` (`jnp.exp`).", "exp")
_unary("log", "Natural logarithm (`jnp.log`); `log(0)` is `-inf`, negatives give NaN.", "log")
_unary("sqrt", "Square root (`jnp.sqrt`); negatives give NaN.", "sqrt")
_unary("square", "Square, `x * x` (`jnp.square`); any numeric dtype.", "square", check=numeric)
_unary("abs", "Absolute value (`jnp.abs`); any numeric dtype.", "abs", check=numeric)
_unary("sign", "Sign: -1, 0 or 1 (`jnp.sign`), in the input's dtype.", "sign", check=numeric)
_unary(
    "heaviside",
    "Step function: 0 for `x < 0`, 1 for `x > 0`, `at_zero` for `x == 0` (`jnp.heaviside`).",
    "heaviside",
    attrs=(Attr("at_zero", "float", 0.5, doc="the value at exactly 0"),),
    make=lambda a: _heaviside(a.at_zero),
)


def _heaviside(at_zero: float) -> Any:
    import jax.numpy as jnp

    def heaviside(x: Any) -> Any:
        return jnp.heaviside(x, jnp.asarray(at_zero, x.dtype))

    return heaviside


def _clip_check(a: Args, x: TensorType) -> None:
    if a.min is None and a.max is None:
        raise fail("`clip` needs `min`, `max` or both", arg="min", code="E202")
    number_fits("`clip`", x, a.min, "min")
    number_fits("`clip`", x, a.max, "max")
    if a.min is not None and a.max is not None and a.min > a.max:
        raise fail(f"`clip` has min = {a.min} above max = {a.max}", arg="max", code="E202")


_unary(
    "clip",
    "Limit every element to `[min, max]` (`jnp.clip`); either bound may be left unset. "
    "The bounds take the tensor's dtype (integers for an integer tensor).",
    "clip",
    check=numeric,
    attrs=(
        Attr("min", "number", None, doc="lower bound (unset: none)"),
        Attr("max", "number", None, doc="upper bound (unset: none)"),
    ),
    kwargs=lambda a: {"min": a.min, "max": a.max},
    extra=_clip_check,
    call="clip(0, 1)",
)
