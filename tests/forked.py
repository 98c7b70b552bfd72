"""Run a function in a forked child of the test process and get its JSON-able answer back.

The model of a preforking server's worker (gunicorn ``--preload``, uWSGI):
what the parent built before the fork is what the child starts from.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict


def in_forked_child(work: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """``work()`` in a child made by ``os.fork()``; the dict it returns, read on a pipe.

    The child ends with ``os._exit(0)`` whatever happens, so it never runs
    the test process's teardown; a child that fails answers nothing and the
    ``json.loads`` here raises.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, json.dumps(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        found: Dict[str, Any] = json.loads(answer.read())
    os.waitpid(pid, 0)
    return found
