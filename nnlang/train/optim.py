"""Optimizer and learning-rate schedule catalogues, built from optax.

The optimizer's ``lr`` is the base (peak) learning rate; the schedule shapes it over
``total_steps``. The caller binds the optimizer first (:func:`bind_optimizer`) to learn
``lr``, builds the schedule (:func:`make_schedule`), then the transformation
(:func:`make_optimizer`); :func:`build` does the three in one go. The train section
binds its calls once, in :mod:`nnlang.train.spec`; :func:`schedule_from` and
:func:`optimizer_from` run such bound calls without binding them again.

The optimizer proper is wrapped in ``optax.inject_hyperparams`` so the current learning
rate lives in the optimizer state; :func:`current_lr` reads it back for logging.
Gradient clipping, when asked for, runs first in the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from nnlang.diagnostics import ArgError
from nnlang.train.catalog import Entry, Param, declare, resolve
from nnlang.train.losses import weight_mask

SCHEDULES: dict[str, Entry] = {}
OPTIMIZERS: dict[str, Entry] = {}


# ------------------------------------------------------------------------ schedules
# Each schedule fn takes (lr, total_steps, steps_per_epoch, **bound) -> optax.Schedule.
def _epochs_to_steps(epochs: int, steps_per_epoch: int) -> int:
    return max(1, epochs * steps_per_epoch)


@declare(SCHEDULES, "constant", "The optimizer's learning rate throughout.")
def _constant(lr: float, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    return optax.constant_schedule(lr)


@declare(
    SCHEDULES,
    "step",
    "Multiply the learning rate by `factor` every `every_epochs` epochs (staircase).",
    Param("every_epochs", "int", 10, "epochs between drops", min=1),
    Param(
        "factor", "float", 0.1, "multiplier applied at each drop", min=0.0, min_open=True, max=1.0
    ),
)
def _step(
    lr: float, total_steps: int, steps_per_epoch: int, every_epochs: int, factor: float
) -> optax.Schedule:
    return optax.exponential_decay(
        lr, _epochs_to_steps(every_epochs, steps_per_epoch), factor, staircase=True
    )


@declare(
    SCHEDULES,
    "exponential",
    "Smooth exponential decay: lr * decay ^ (epoch / every_epochs), fractional epochs included.",
    Param(
        "decay",
        "float",
        0.96,
        "multiplier per `every_epochs` epochs",
        min=0.0,
        min_open=True,
        max=1.0,
    ),
    Param(
        "every_epochs",
        "int",
        1,
        "epochs over which the learning rate is multiplied by `decay`",
        min=1,
    ),
)
def _exponential(
    lr: float, total_steps: int, steps_per_epoch: int, decay: float, every_epochs: int
) -> optax.Schedule:
    return optax.exponential_decay(lr, _epochs_to_steps(every_epochs, steps_per_epoch), decay)


@declare(
    SCHEDULES,
    "cosine",
    "Cosine decay from lr to alpha * lr over the whole run.",
    Param("alpha", "float", 0.0, "final learning rate as a fraction of lr", min=0.0, max=1.0),
)
def _cosine(lr: float, total_steps: int, steps_per_epoch: int, alpha: float) -> optax.Schedule:
    return optax.cosine_decay_schedule(lr, max(1, total_steps), alpha=alpha)


def _warmup_steps(warmup: int | float, total_steps: int) -> int:
    if isinstance(warmup, float):
        if not 0.0 <= warmup < 1.0:
            raise ArgError(
                "E202",
                f"`warmup` as a fraction of the run must be in [0, 1), got {warmup}",
                arg="warmup",
                help="write a whole number of steps as an integer: `warmup = 500`",
            )
        return int(round(warmup * total_steps))
    return warmup


@declare(
    SCHEDULES,
    "warmup_cosine",
    "Linear warmup from 0 to lr, then cosine decay to alpha * lr at the end of the run.",
    Param(
        "warmup",
        "number",
        0.05,
        "warmup length: steps if an integer, a fraction of the run if a float < 1",
        min=0.0,
    ),
    Param("alpha", "float", 0.0, "final learning rate as a fraction of lr", min=0.0, max=1.0),
)
def _warmup_cosine(
    lr: float, total_steps: int, steps_per_epoch: int, warmup: int | float, alpha: float
) -> optax.Schedule:
    steps = _warmup_steps(warmup, total_steps)
    if steps >= total_steps:
        raise ArgError(
            "E202",
            f"warmup of {steps} steps is not shorter than the run ({total_steps} steps)",
            arg="warmup",
        )
    if steps == 0:
        return optax.cosine_decay_schedule(lr, max(1, total_steps), alpha=alpha)
    return optax.warmup_cosine_decay_schedule(0.0, lr, steps, total_steps, end_value=alpha * lr)


@declare(
    SCHEDULES,
    "one_cycle",
    "One-cycle policy (cosine): from max_lr / div_factor up to max_lr over pct_start of "
    "the run, then down to max_lr / (div_factor * final_div_factor).",
    Param(
        "max_lr",
        "float",
        None,
        "peak learning rate (default: the optimizer's lr)",
        min=0.0,
        min_open=True,
    ),
    Param(
        "pct_start",
        "float",
        0.3,
        "fraction of the run spent increasing",
        min=0.0,
        min_open=True,
        max=1.0,
        max_open=True,
    ),
    Param("div_factor", "float", 25.0, "initial lr = max_lr / div_factor", min=1.0),
    Param("final_div_factor", "float", 1e4, "final lr = initial lr / final_div_factor", min=1.0),
)
def _one_cycle(
    lr: float,
    total_steps: int,
    steps_per_epoch: int,
    max_lr: float | None,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
) -> optax.Schedule:
    return optax.cosine_onecycle_schedule(
        max(2, total_steps), max_lr or lr, pct_start, div_factor, final_div_factor
    )


@declare(
    SCHEDULES,
    "linear",
    "Linear decay from lr to end * lr over the whole run.",
    Param("end", "float", 0.0, "final learning rate as a fraction of lr", min=0.0, max=1.0),
)
def _linear(lr: float, total_steps: int, steps_per_epoch: int, end: float) -> optax.Schedule:
    return optax.linear_schedule(lr, end * lr, max(1, total_steps))


@declare(
    SCHEDULES,
    "asymptotic",
    "MiniSom's asymptotic decay, lr / (1 + t / (T/2)) at step t of T: a third of lr at the end.",
)
def _asymptotic(lr: float, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    half = max(1, total_steps) / 2.0
    return lambda t: lr / (1.0 + t / half)


def make_schedule(
    name: str,
    kwargs: Mapping[str, Any] | None,
    lr: float,
    total_steps: int,
    steps_per_epoch: int,
    *,
    args: Sequence[Any] = (),
) -> optax.Schedule:
    """The learning-rate schedule ``step -> lr`` for a ``schedule = name(...)`` call.

    ``lr`` is the optimizer's base learning rate; ``total_steps`` the number of
    optimizer steps in the run (epochs * steps_per_epoch).
    """
    entry, bound = resolve(SCHEDULES, "schedule", name, args, kwargs)
    return schedule_from(entry, bound, lr, total_steps, steps_per_epoch)


def schedule_from(
    entry: Entry, bound: Mapping[str, Any], lr: float, total_steps: int, steps_per_epoch: int
) -> optax.Schedule:
    """:func:`make_schedule` for a call already bound to ``entry`` (every param in
    ``bound``): nothing is bound again."""
    return entry.fn(float(lr), int(total_steps), int(steps_per_epoch), **bound)


# ----------------------------------------------------------------------- optimizers
_LR = Param("lr", "float", 1e-3, "base learning rate", min=0.0, min_open=True)
_LR_SGD = Param("lr", "float", 1e-2, "base learning rate", min=0.0, min_open=True)
_WD = Param(
    "weight_decay",
    "float",
    0.0,
    "L2 weight decay added to the gradient (coupled) for weight matrices and kernels",
    min=0.0,
    kw_only=True,
)
_B1 = Param(
    "b1", "float", 0.9, "decay of the first-moment average", min=0.0, max=1.0, max_open=True
)
_B2 = Param(
    "b2", "float", 0.999, "decay of the second-moment average", min=0.0, max=1.0, max_open=True
)


def _eps(default: float) -> Param:
    return Param("eps", "float", default, "added to the denominator for stability", min=0.0)


def _none_if_zero(x: float) -> float | None:
    return x if x > 0 else None


# Each optimizer fn takes (**bound without lr and weight_decay) and returns an optax
# factory accepting ``learning_rate`` (and scheduled numeric hyperparameters), which
# inject_hyperparams wraps.
@declare(
    OPTIMIZERS,
    "sgd",
    "Stochastic gradient descent, optionally with (Nesterov) momentum.",
    _LR_SGD,
    Param(
        "momentum", "float", 0.0, "momentum coefficient (0: none)", min=0.0, max=1.0, max_open=True
    ),
    Param("nesterov", "bool", False, "use Nesterov momentum"),
    _WD,
)
def _sgd(momentum: float, nesterov: bool) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.sgd(learning_rate, _none_if_zero(momentum), nesterov)


@declare(
    OPTIMIZERS,
    "momentum",
    "SGD with heavy-ball momentum.",
    _LR_SGD,
    Param("beta", "float", 0.9, "momentum coefficient", min=0.0, max=1.0, max_open=True),
    _WD,
)
def _momentum(beta: float) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.sgd(learning_rate, _none_if_zero(beta), False)


@declare(
    OPTIMIZERS,
    "nesterov",
    "SGD with Nesterov momentum.",
    _LR_SGD,
    Param("beta", "float", 0.9, "momentum coefficient", min=0.0, max=1.0, max_open=True),
    _WD,
)
def _nesterov(beta: float) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.sgd(learning_rate, _none_if_zero(beta), True)


@declare(OPTIMIZERS, "adam", "Adam.", _LR, _B1, _B2, _eps(1e-8), _WD)
def _adam(b1: float, b2: float, eps: float) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.adam(learning_rate, b1, b2, eps)


@declare(
    OPTIMIZERS,
    "adamw",
    "Adam with decoupled weight decay (applied to weight matrices and kernels).",
    _LR,
    _B1,
    _B2,
    _eps(1e-8),
    Param(
        "weight_decay",
        "float",
        1e-4,
        "decoupled weight decay, scaled by the learning rate",
        min=0.0,
    ),
    decoupled_decay=True,
)
def _adamw(
    b1: float, b2: float, eps: float, weight_decay: float
) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.adamw(
        learning_rate, b1, b2, eps, weight_decay=weight_decay, mask=weight_mask
    )


@declare(
    OPTIMIZERS,
    "rmsprop",
    "RMSProp.",
    _LR,
    Param(
        "decay",
        "float",
        0.9,
        "decay of the squared-gradient average",
        min=0.0,
        max=1.0,
        max_open=True,
    ),
    _eps(1e-8),
    Param(
        "momentum", "float", 0.0, "momentum coefficient (0: none)", min=0.0, max=1.0, max_open=True
    ),
    Param(
        "centered",
        "bool",
        False,
        "normalise by the gradient's variance instead of its second moment",
    ),
    _WD,
)
def _rmsprop(
    decay: float, eps: float, momentum: float, centered: bool
) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.rmsprop(
        learning_rate, decay, eps, centered=centered, momentum=_none_if_zero(momentum)
    )


@declare(
    OPTIMIZERS,
    "adagrad",
    "Adagrad.",
    _LR_SGD,
    Param(
        "initial_accumulator", "float", 0.1, "starting value of the squared-gradient sums", min=0.0
    ),
    _eps(1e-7),
    _WD,
)
def _adagrad(initial_accumulator: float, eps: float) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.adagrad(learning_rate, initial_accumulator, eps)


@declare(OPTIMIZERS, "adabelief", "AdaBelief.", _LR, _B1, _B2, _eps(1e-16), _WD)
def _adabelief(b1: float, b2: float, eps: float) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.adabelief(learning_rate, b1, b2, eps)


@declare(
    OPTIMIZERS,
    "lamb",
    "LAMB (layer-wise adaptive large-batch optimizer).",
    _LR,
    _B1,
    _B2,
    _eps(1e-6),
    Param(
        "weight_decay",
        "float",
        0.0,
        "decoupled weight decay on weight matrices and kernels",
        min=0.0,
    ),
    decoupled_decay=True,
)
def _lamb(
    b1: float, b2: float, eps: float, weight_decay: float
) -> Callable[..., optax.GradientTransformation]:
    return lambda learning_rate: optax.lamb(
        learning_rate, b1, b2, eps, weight_decay=weight_decay, mask=weight_mask
    )


def bind_optimizer(
    name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check an ``optimizer = name(...)`` call; the result has every param (``lr`` too)."""
    return resolve(OPTIMIZERS, "optimizer", name, args, kwargs)[1]


def make_optimizer(
    name: str,
    kwargs: Mapping[str, Any] | None,
    schedule: optax.Schedule | None = None,
    clip: float | None = None,
    *,
    args: Sequence[Any] = (),
) -> optax.GradientTransformation:
    """The optax transformation for ``optimizer = name(...)`` (see :func:`optimizer_from`)."""
    entry, bound = resolve(OPTIMIZERS, "optimizer", name, args, kwargs)
    return optimizer_from(entry, bound, schedule, clip)


def optimizer_from(
    entry: Entry,
    bound: Mapping[str, Any],
    schedule: optax.Schedule | None = None,
    clip: float | None = None,
) -> optax.GradientTransformation:
    """The optax transformation for a call already bound to ``entry`` (every param in
    ``bound``, which is left as it is): nothing is bound again.

    ``schedule`` replaces the constant ``lr`` when given. ``clip`` (a positive float)
    chains ``clip_by_global_norm`` first. A ``weight_decay`` on optimizers without a
    decoupled one is ``add_decayed_weights`` on the clipped gradient (L2, coupled).
    """
    bound = dict(bound)
    lr = bound.pop("lr")
    # adamw and lamb decay inside the optimizer (decoupled); the rest get it here
    coupled_wd = 0.0 if entry.extra.get("decoupled_decay") else bound.pop("weight_decay")
    factory = entry.fn(**bound)
    opt = optax.inject_hyperparams(factory)(learning_rate=schedule if schedule is not None else lr)
    chain: list[optax.GradientTransformation] = []
    if clip is not None:
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
            raise ArgError("E202", f"`clip` must be a positive number, got {clip!r}", arg="clip")
        chain.append(optax.clip_by_global_norm(float(clip)))
    if coupled_wd > 0:
        chain.append(optax.add_decayed_weights(coupled_wd, mask=weight_mask))
    chain.append(opt)
    return optax.chain(*chain) if len(chain) > 1 else opt


def build(
    optimizer: tuple[str, Sequence[Any], Mapping[str, Any]],
    schedule: tuple[str, Sequence[Any], Mapping[str, Any]] | None,
    clip: float | None,
    total_steps: int,
    steps_per_epoch: int,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Optimizer and schedule from their calls ``(name, args, kwargs)`` in one go."""
    name, args, kwargs = optimizer
    entry, bound = resolve(OPTIMIZERS, "optimizer", name, args, kwargs)
    if schedule is None:
        sched = optax.constant_schedule(bound["lr"])
    else:
        s_name, s_args, s_kwargs = schedule
        sched = make_schedule(
            s_name, s_kwargs, bound["lr"], total_steps, steps_per_epoch, args=s_args
        )
    return optimizer_from(entry, bound, sched, clip), sched


def current_lr(opt_state: Any) -> jax.Array:
    """The learning rate the last update used (the schedule's value at the step before
    the next update; the initial value before any update), from the state of
    :func:`make_optimizer`'s transformation."""
    for s in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "hyperparams")):
        if hasattr(s, "hyperparams") and "learning_rate" in s.hyperparams:
            return jnp.asarray(s.hyperparams["learning_rate"])
    raise ValueError("optimizer state has no injected learning rate")  # pragma: no cover
