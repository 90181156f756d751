"""matplotlib, the optional ``plots`` extra, for the pictures a run draws
(``curves.png``, ``umatrix.png``). Standard library only until it is asked for."""

from __future__ import annotations

import sys
from typing import Any


def pyplot(picture: str) -> Any:
    """``matplotlib.pyplot`` (Agg), or None with a one-line notice on stderr when
    matplotlib is not installed: ``picture`` is the file that is then not written."""
    try:
        import matplotlib
    except ImportError:
        print(
            f"note: {picture} is not written: matplotlib is not installed "
            "(pip install 'nnlang[plots]')",
            file=sys.stderr,
        )
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
