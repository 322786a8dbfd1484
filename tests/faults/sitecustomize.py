"""Fault injection for the resume tests: on ``PYTHONPATH`` only in those tests' subprocesses, never in production.

With ``METASAE_FREEZE_AFTER=<step>/<event>/<name>`` set (e.g. ``saes/computed/sae``), a Python process that
appends that event to the cache log stops itself (SIGSTOP) right after the line is written.  The test sees the
event in the log and SIGKILLs the frozen process: a kill at a known stage, with no hook in the package itself.
Papermill's kernels inherit the environment, so this reaches the notebook kernels of a ``runner.build`` too.
"""

import os
import signal

_WANT = os.environ.get("METASAE_FREEZE_AFTER")

if _WANT:
    from metasae_utils import artifacts

    _log_event = artifacts._log_event

    def _log_then_freeze(root, step, key, name, event, **info):
        _log_event(root, step, key, name, event, **info)
        if f"{step}/{event}/{name}" == _WANT:
            os.kill(os.getpid(), signal.SIGSTOP)

    artifacts._log_event = _log_then_freeze
