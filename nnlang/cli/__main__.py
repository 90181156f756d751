"""``python -m nnlang.cli``: the `nnlang` command."""

import sys

from nnlang.cli import main

sys.exit(main())
