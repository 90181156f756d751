"""The `nnlang lsp` verb: the language server for editors (:mod:`nnlang.lsp`)."""

from __future__ import annotations

import argparse


def lsp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stdio",
        action="store_true",
        help="talk over stdin and stdout (the default; accepted for editors that pass it)",
    )


def cmd_lsp(a: argparse.Namespace) -> int:
    from nnlang.diagnostics import Diagnostic, NNError

    try:
        import pygls  # noqa: F401
    except ImportError as e:
        raise NNError(
            Diagnostic(
                "E705",
                f"`nnlang lsp` needs pygls, which is not installed ({e})",
                help="pip install 'nnlang[lsp]' (from a source checkout: pip install -e '.[lsp]')",
            )
        ) from None
    from nnlang.lsp.server import main

    return main()
