"""Every script in examples/ runs to completion with ``--small`` (tiny sizes).

Each runs in a fresh interpreter with the working directory set to a temporary
folder, so its outputs (default ``--out out``) land there; the files its
docstring promises ("Writes out/NAME.png ...") must exist and be non-empty.
Examples that read MNIST / Fashion-MNIST are skipped when the data is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_HOME

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("[0-9]*.py"))
PROMISED = re.compile(r"\bout/([\w.-]+\.(?:png|csv|dnn))\b")


def test_examples_exist():
    names = [p.name for p in EXAMPLES]
    for prefix in [f"{i:02d}_" for i in range(1, 11)]:
        assert any(n.startswith(prefix) for n in names), f"examples/{prefix}*.py is missing"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_small(script, tmp_path):
    source = script.read_text()
    if re.search(r"load_(fashion_)?mnist|load_idx_dataset", source) and not DATA_HOME.is_dir():
        pytest.skip(f"{script.name} needs the image data sets ({DATA_HOME} not found)")
    env = dict(os.environ)
    env.setdefault("DNN_DATA_HOME", str(DATA_HOME))
    env.setdefault("MPLBACKEND", "Agg")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # many small subprocesses: avoid BLAS thread oversubscription
    proc = subprocess.run([sys.executable, str(script), "--small"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    docstring = source.split('"""')[1] if source.count('"""') >= 2 else ""
    for name in PROMISED.findall(docstring):
        path = tmp_path / "out" / name
        assert path.is_file() and path.stat().st_size > 0, f"{script.name} did not write out/{name}"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_accepts_out(script):
    """Every example takes ``--out DIR`` (where its files go), so a user can run any of them
    with the same options; the ones that write files say which in their docstring."""
    source = script.read_text()
    assert re.search(r"""add_argument\(\s*["']--out["']""", source), f"{script.name} has no --out"
