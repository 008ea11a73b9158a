"""Give XLA exactly the job's share of the machine.

XLA:CPU ignores OMP_NUM_THREADS and XLA_FLAGS thread options; it sizes its thread pool from
the CPU affinity when the backend starts. So we narrow the affinity to N CPUs while the
backend starts, then widen it again for every thread, letting the OS place the N workers on
whichever cores are free (pinning would stack concurrent jobs on the same cores).
"""

from __future__ import annotations

import os


def limit_xla_threads(threads: int) -> None:
    if threads < 1:
        raise ValueError("threads must be >= 1")
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    if threads >= len(allowed):
        return
    os.sched_setaffinity(0, set(sorted(allowed)[:threads]))
    try:
        import jax

        jax.devices()
    finally:
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), allowed)
            except OSError:
                pass
