"""What a command imports: `nnlang check` of a file without a train section does not
import JAX (issue 12: a one-layer check is about 0.5 s of process time, most of it
Python's start and networkx; with JAX it was 1.6-2.6 s on the same machine)."""

from __future__ import annotations

import subprocess
import sys

from _util import write

ONE = """
model One {
    input x: f32[4]
    output y = x -> dense(2)
}
"""


def test_check_without_a_train_section_does_not_import_jax(tmp_path) -> None:
    src = write(tmp_path, "one.nn", ONE)
    code = (
        "import sys\n"
        "from nnlang.cli import main\n"
        f"rc = main(['check', {str(src)!r}])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('jax', 'flax', 'optax', 'orbax') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ok — One (10 parameters)" in r.stdout
