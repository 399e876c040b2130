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


def test_frozen_objects_are_skipped_until_unfrozen_and_new_cycles_are_still_collected() -> None:
    from mdm.memory import freeze_long_lived, unfreeze

    old = _Node()
    old_ref = weakref.ref(old)
    try:
        assert freeze_long_lived() >= 0
        assert gc.get_freeze_count() > 0
        del old
        release_memory()
        assert old_ref() is not None  # frozen: a cycle alive at the freeze is not walked any more
        new = _Node()
        new_ref = weakref.ref(new)
        del new
        release_memory()
        assert new_ref() is None  # created after the freeze: collected as before
    finally:
        unfreeze()
    assert gc.get_freeze_count() == 0
    release_memory()
    assert old_ref() is None  # back under the collector: the old cycle goes too
