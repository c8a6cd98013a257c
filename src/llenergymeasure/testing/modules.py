"""Swap fake modules into ``sys.modules`` for a block, putting back what was there."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def modules_installed(modules: dict[str, ModuleType]) -> Iterator[None]:
    """Make ``import NAME`` return ``modules[NAME]`` inside the block; afterwards each name
    imports what it did before (or is absent again)."""
    previous = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in previous.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
