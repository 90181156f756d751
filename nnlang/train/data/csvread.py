"""Reading a CSV file into a pyarrow table for the table sources, and naming its rows:
a data row is named by its line in the file (the header is line 1), found by re-reading
the file with Python's ``csv`` module only when a mistake is reported."""

from __future__ import annotations

import csv as _csv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from nnlang.diagnostics import ArgError
from nnlang.train.data.sources import _unreadable


class _Rows:
    """How a data row (0-based, of the table read) is named in a message."""

    def __init__(self, file: Path | None, delimiter: str, header: bool) -> None:
        self.file, self.delimiter, self.header = file, delimiter, header
        self.kept: np.ndarray | None = None  # rows of the file left after `missing = "drop"`

    def __call__(self, i: int) -> str:
        if self.kept is not None:
            i = int(self.kept[i])
        if self.file is None:  # parquet
            return f"row {i + 1}"
        with open(self.file, newline="", encoding="utf-8-sig") as f:
            reader = _csv.reader(f, delimiter=self.delimiter)
            k = -1 if self.header else 0
            for r in reader:
                if not any(c.strip() for c in r):
                    continue
                if k == i:
                    return f"row {reader.line_num}"
                k += 1
        return f"row {i + 1 + self.header}"


def _read_csv(file: Path, path: str, header: bool, delimiter: str, strings: list[str]) -> pa.Table:
    read = pacsv.ReadOptions(autogenerate_column_names=not header)
    parse = pacsv.ParseOptions(delimiter=delimiter)
    convert = pacsv.ConvertOptions(
        strings_can_be_null=True,
        column_types={c: pa.string() for c in strings},
        timestamp_parsers=[],  # dates stay strings (categories), not timestamps
    )
    try:
        t = pacsv.read_csv(file, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as e:
        _locate_shape(file, path, header, delimiter)
        raise _unreadable(path, e, "path") from None
    except (OSError, pa.ArrowException) as e:
        raise _unreadable(path, e, "path") from None
    if not header:
        t = t.rename_columns([str(i) for i in range(t.num_columns)])
    else:
        t = t.rename_columns([c.strip() for c in t.column_names])
    return t


def _locate_shape(file: Path, path: str, header: bool, delimiter: str) -> None:
    """E407 at the first row whose number of cells differs (pyarrow's parse error)."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            rows = [(n, r) for n, r in _line_rows(_csv.reader(f, delimiter=delimiter))]
    except (OSError, UnicodeDecodeError, _csv.Error) as e:
        raise _unreadable(path, e, "path") from None
    if rows:
        n_cols = len(rows[0][1])
        for line, r in rows[1:] if header else rows:
            if len(r) != n_cols:
                raise ArgError(
                    "E407",
                    f"`{path}` row {line} has {len(r)} columns, expected {n_cols}",
                    arg="path",
                )


def _line_rows(reader: Any) -> Any:
    for r in reader:
        if any(c.strip() for c in r):
            yield reader.line_num, r
