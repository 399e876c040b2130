"""Import the data-quality library on a background thread before the first gate needs it.

great_expectations takes about 3 s to import (hundreds of modules), and the first source gate
used to pay it after its extract was read. :func:`start` begins the import on a thread as soon as
:mod:`pipelines.flows` is imported, so it overlaps Prefect setting the flow run up (starting its
API, creating the run: mostly waiting) and, when that is quicker, the first extracts; :func:`wait`
(called before the first gate) joins it, so the gates never import it concurrently. An import
holds the GIL: overlapping the extracts alone, the 1M-record extract took 5.7 s instead of 2.9 s.
A failed import is not reported here: the gates import the library themselves and say why.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading

log = logging.getLogger(__name__)

MODULE = "great_expectations"
_thread: threading.Thread | None = None
_guard = threading.Lock()


def _import() -> None:
    try:
        importlib.import_module(MODULE)
    except Exception as err:  # the gates import it again and report the error where it matters
        log.debug("preloading %s failed: %s", MODULE, err)


def start() -> None:
    """Begin importing the library on a background thread (nothing when it is imported or under way)."""
    global _thread
    with _guard:
        if _thread is None and MODULE not in sys.modules:
            _thread = threading.Thread(target=_import, name="preload-quality-library", daemon=True)
            _thread.start()


def wait() -> None:
    """Return once a preload started by :func:`start` has finished (at once when none was started)."""
    with _guard:
        thread = _thread
    if thread is not None:
        thread.join()
