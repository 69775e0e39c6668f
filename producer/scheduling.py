"""The producer's threads under Linux's SCHED_BATCH: a thread that wakes does not
preempt the one running.

A quiet producer's transaction is a relay between its worker thread and librdkafka's
threads (~27 wake-ups of librdkafka's a transaction at 50 events/s): each request the
worker hands over wakes a thread that, under the default policy, preempts the worker
on the spot, and each preemption is two context switches and the caches they spoil.
Under SCHED_BATCH the woken thread waits until the running one blocks or the next
scheduler tick. The producer's unit of latency is its commit budget
(`producer.commitInterval`, ~200 ms), not the sub-millisecond that preemption gains:
with every thread of a producer at 50 events/s moved to SCHED_BATCH (`chrt -b -a`,
bench.producer, alternating, load 0.6-1.0) librdkafka's CPU per transaction went
0.69-0.73 -> 0.61-0.62 ms and its wake-ups 27 -> 23, latency unchanged.

Set on the thread that starts the workers, before it starts them: a new thread takes
its creator's policy (pthreads' default, PTHREAD_INHERIT_SCHED), so the workers and the
librdkafka threads each worker's producer starts run under it too. Nothing here needs
privileges: any thread may move itself from the default policy to SCHED_BATCH.
"""

from __future__ import annotations

import os


def batch_scheduling() -> str | None:
    """Move the calling thread, and the threads it starts from now on, to SCHED_BATCH.

    Returns why it could not (the platform has no such policy, or refused it), or None.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return "this platform has no SCHED_BATCH (it is Linux's)"
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:  # a seccomp profile may refuse the call
        return f"sched_setscheduler(SCHED_BATCH) was refused: {exc}"
    return None
