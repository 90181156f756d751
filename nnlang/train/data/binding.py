"""Input binding: match the model's inputs to the data's feature arrays, reshaping and
casting the arrays to the declared shapes and dtypes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nnlang.diagnostics import ArgError, did_you_mean
from nnlang.fitting import Misfit, cast, fit_shape, shape_text
from nnlang.train.data.dataset import Dataset


def bind_inputs(
    ds: Dataset, model_inputs: Mapping[str, tuple[str, Sequence[Any]]]
) -> dict[str, str]:
    """Map each model input to a feature array and make the arrays fit, in place.

    Binding: one model input and one feature array go together whatever their names;
    otherwise each input takes the feature array of the same name. Each input's arrays
    (every split) are then fitted by the one rule of :mod:`nnlang.fitting` (reshape row
    by row to a fully fixed shape of as many elements; cast when no value changes);
    E407 naming the input otherwise. Returns ``{model input: feature key}``.
    """
    keys = list(ds.feature_keys)
    names = list(model_inputs)
    if len(names) == 1 and len(keys) == 1:
        mapping = {names[0]: keys[0]}
    else:
        mapping = {}
        for n in names:
            if n not in keys:
                hint = did_you_mean(n, keys) or f"the data's feature arrays are {', '.join(keys)}"
                raise ArgError(
                    "E407", f"model input `{n}` has no data array of that name", help=hint
                )
            mapping[n] = n
    for n, key in mapping.items():
        dtype, declared = model_inputs[n]
        what, source = f"model input `{n}`", f"the data `{key}`"
        try:
            target = fit_shape(
                declared,
                ds.sample_shape(key),
                what=what,
                source=source,
                type_text=f"{dtype}{shape_text(declared)}",
            )
        except Misfit as e:
            raise ArgError(
                "E407",
                e.message,
                help="change the model's input shape, or choose other feature columns/arrays",
            ) from None
        for split, arrays in ds.splits.items():
            a = arrays[key]
            if hasattr(a, "fitted"):  # rows on disk (data.rows.Rows): fitted as they are read
                try:
                    arrays[key] = a.fitted(
                        target, dtype, what=what, source=f"{source} ({split} split)"
                    )
                except Misfit as e:
                    raise ArgError("E407", e.message, help=e.help) from None
                continue
            if target is not None:
                a = a.reshape((len(a), *target))
            try:
                arrays[key] = cast(a, dtype, what=what, source=f"{source} ({split} split)")
            except Misfit as e:
                raise ArgError("E407", e.message, help=e.help) from None
    return mapping
