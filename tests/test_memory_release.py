"""mdm.memory: cycles are collected and glibc's heap is trimmed between steps."""

from __future__ import annotations

import ctypes.util
import gc
import weakref

from mdm.memory import release_memory


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_release_collects_cycles_even_while_the_collector_is_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        node = _Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # a cycle: reference counting alone does not free it
        trimmed = release_memory()
        assert ref() is None
    finally:
        if was:
            gc.enable()
    assert trimmed is (ctypes.util.find_library("c") is not None)
