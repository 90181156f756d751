"""Render ``docs/cli.md`` from the `nnlang` argument parser.

    python -m nnlang.cli.doc > docs/cli.md

Every verb, option, default, choice and example comes from
``nnlang.cli.build_parser()``, the parser the
command itself uses; only :data:`HEADER` is hand-written. A test keeps the file equal
to :func:`render_markdown`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HEADER = """\
<!-- Generated from the argument parser by nnlang/cli/doc.py: do not edit by hand.
     Regenerate with: python -m nnlang.cli.doc > docs/cli.md -->

# Command-line reference

`nnlang VERB [options]`. Each verb also prints its options and an example with
`nnlang VERB --help`; `nnlang --version` prints the version.

| verb | what it does |
|---|---|
{verbs}

## Exit codes

| code | meaning |
|---|---|
| `0` | success (warnings may have been printed) |
| `1` | a mistake in a `.nn` file, its data or its run: the diagnostics were printed |
| `2` | a usage error (unknown option, missing argument), or an internal error |
| `3` | the environment failed, not the file (E7xx): no space left or a file size limit, a folder that cannot be written, a path below a regular file, out of memory |
| `130` | `nnlang train` was interrupted (Ctrl-C, SIGTERM or SIGHUP) after writing a checkpoint |

## Diagnostics

Mistakes are reported as diagnostics with a stable code (`E101`, `W301`, ...; see
[errors.md](errors.md)), on standard error. `nnlang check --format` chooses how:

- `full` (the default): the message, the location, the source line with carets under
  the mistake, related places, and a hint.

  ```
  error[E101]: unknown name `hiden`
   --> digits.nn:6:36
    |
  6 |                           -> dense(hiden) -> relu -> dropout(0.2)
    |                                    ^^^^^
    = help: did you mean `hidden`?
  ```

- `concise`: one line per diagnostic, for editors and `grep`:
  `digits.nn:6:36: error[E101]: unknown name `hiden` (help: did you mean `hidden`?)`
- `json`: a JSON list on standard output, one object per diagnostic with `code`,
  `severity`, `message`, `span` (`file`, `line`, `col`, `end_line`, `end_col`; 1-based,
  end exclusive), `label`, `secondary`, `help` and `notes`.

Verbs with `--json` (`summary`, `layers`, `train`, ...) keep standard output
machine-readable when the file has a mistake: they print
`{"ok": false, "diagnostics": [...]}` (the objects above) on standard output, the
rendered diagnostics on standard error, and exit with 1.

A Python traceback is never shown for a mistake in a `.nn` file. If nnlang itself
fails, it prints `error[E999]: internal error` with a one-line summary and exits
with 2; run the command again with `NNLANG_DEBUG=1` in the environment to see the full
traceback, and report it.

## Environment

| variable | effect |
|---|---|
| `NNLANG_DEBUG=1` | print the traceback of an internal error (E999) |
| `NNLANG_NO_CACHE=1` | do not use JAX's persistent compilation cache (like `--no-cache`), nor the cached parser tables |
| `XDG_CACHE_HOME` | where the compilation cache lives: `$XDG_CACHE_HOME/nnlang/jax` (default `~/.cache/nnlang/jax`); the grammar's parser tables are kept as JSON beside it, in `nnlang/parser` |

## Verbs
"""

#: What an argument without a help text in the parser means (shown in the docs only):
#: by (verb, dest), then by dest.
FALLBACK_HELP: dict[tuple[str, str] | str, str] = {
    "file": "the `.nn` file",
    "files": "the `.nn` files",
    "model": "the model to use (default: the model of the file's first train section, else its first model)",
    ("eval", "model"): "the model (default: the one the run trained)",
    ("predict", "model"): "the model (default: the one the run trained)",
    ("export", "model"): "the model (default: the one the run trained)",
    "run": "a run directory written by `nnlang train`",
    "json": "print JSON on standard output instead of a table",
    "set": "a model parameter, its value a .nn expression, e.g. `--set hidden=2*64`; repeatable",
    ("export", "format"): "the artifact format (see [export.md](export.md))",
    ("export", "out"): "the artifact file to write; sidecar files are written beside it",
}


def build() -> argparse.ArgumentParser:
    from nnlang import cli

    return cli.build_parser()


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _verb_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _metavar(a: argparse.Action) -> str:
    if a.metavar is not None:
        return str(a.metavar)
    if a.option_strings:
        return a.dest.upper()
    return a.dest


def _arg_text(a: argparse.Action) -> str:
    """``FILE``, ``[FILE]``, ``FILE...``, ``--run DIR``, ``-o, --output OUTPUT``."""
    if not a.option_strings:
        m = _metavar(a)
        return {"?": f"[{m}]", "+": f"{m}...", "*": f"[{m}...]"}.get(str(a.nargs), m)
    names = ", ".join(a.option_strings)
    if a.nargs == 0:
        return names
    if a.choices is not None and a.metavar is None:
        return f"{names} {{{','.join(map(str, a.choices))}}}"
    return f"{names} {_metavar(a)}"


def _usage_part(a: argparse.Action) -> str:
    if not a.option_strings:
        return _arg_text(a)
    first = a.option_strings[0]
    if a.nargs == 0:
        text = first
    elif a.choices is not None and a.metavar is None:
        text = f"{first} {{{','.join(map(str, a.choices))}}}"
    else:
        text = f"{first} {_metavar(a)}"
    return text if a.required else f"[{text}]"


def _default(a: argparse.Action) -> str:
    if a.nargs == 0 or a.default in (None, False, argparse.SUPPRESS) or isinstance(a.default, list):
        return ""
    return (
        f"`{a.default:,}`"
        if isinstance(a.default, int) and not isinstance(a.default, bool)
        else f"`{a.default}`"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _example(sp: argparse.ArgumentParser) -> str:
    epilog = sp.epilog or ""
    lines = [ln.strip() for ln in epilog.splitlines()]
    if "example:" in lines:
        return "\n".join(ln for ln in lines[lines.index("example:") + 1 :] if ln)
    return ""


def render_verb(name: str, sp: argparse.ArgumentParser) -> str:
    actions = [a for a in sp._actions if not isinstance(a, argparse._HelpAction)]
    positionals = [a for a in actions if not a.option_strings]
    options = [a for a in actions if a.option_strings]
    usage = " ".join(
        ["nnlang", name, *(_usage_part(a) for a in options), *(_usage_part(a) for a in positionals)]
    )
    description = (sp.description or "").rstrip(".")
    description = description[:1].upper() + description[1:] + "."
    out = [f"### `nnlang {name}`", "", description, "", "```", usage, "```", ""]
    if actions:
        out += ["| argument | meaning | default |", "|---|---|---|"]
        for a in positionals + options:
            meaning = a.help or FALLBACK_HELP.get((name, a.dest)) or FALLBACK_HELP.get(a.dest, "")
            extra = []
            if a.required and a.option_strings:
                extra.append("required")
            if a.choices is not None:
                extra.append("one of " + ", ".join(f"`{c}`" for c in a.choices))
            if isinstance(a, argparse._AppendAction):
                if "repeatable" not in meaning:
                    extra.append("repeatable")
            if extra:
                meaning = (meaning + "; " if meaning else "") + "; ".join(extra)
            out.append(f"| `{_arg_text(a)}` | {_cell(meaning)} | {_default(a)} |")
        out.append("")
    example = _example(sp)
    if example:
        out += ["Example:", "", "```sh", example, "```", ""]
    return "\n".join(out)


def render_markdown(parser: Any = None) -> str:
    parser = parser or build()
    verbs = _verbs(parser)
    helps = _verb_help(parser)
    table = "\n".join(f"| [`{v}`](#nnlang-{v}) | {_cell(helps.get(v, ''))} |" for v in verbs)
    out = [HEADER.replace("{verbs}", table)]
    for name, sp in verbs.items():
        out.append(render_verb(name, sp))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_markdown())
