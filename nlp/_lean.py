"""Import spaCy and underthesea without the deep-learning stacks they pull in when installed.

thinc (under spaCy) imports torch if it is importable, and underthesea's ``__init__`` eagerly imports
its translate/transformers helpers. With torch and transformers installed (the strong classifier
needs them) that costs ~6 s and ~250 MB per process before any text is processed — measured on this
machine: ``import spacy`` + underthesea ``word_tokenize`` 7.6 s / 443 MB peak RSS, 1.4 s / 187 MB
with this guard. The enrich hot path uses only CRF and hashing models, so while the guard is active
those modules are marked absent (both libraries catch the ImportError and carry on without them).
Modules the process has already imported are left alone, and nothing is blocked afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

HEAVY_OPTIONAL_MODULES = ("torch", "transformers")


@contextmanager
def without_heavy_optional_imports() -> Iterator[None]:
    blocked = [name for name in HEAVY_OPTIONAL_MODULES if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
