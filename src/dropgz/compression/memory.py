"""Keep the worker's resident memory flat however large the files.

The worker allocates and frees large buffers all the time (1 MiB download chunks, 8 MiB
upload chunks). glibc serves such blocks with mmap and returns them on free, until the first
free of one: then it raises its mmap threshold ("dynamic threshold") and later blocks come
from the heap, which fragments and is not given back. Measured (bench/memory.py): peak RSS
grew 29 → 36 MiB from a 256 MiB to a 1 GiB file; with the threshold pinned at 1 MiB it stays
at 27 MiB for both. Pinning it with ``mallopt`` turns the dynamic threshold off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 1 << 20


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold; True when done (False elsewhere than glibc Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
