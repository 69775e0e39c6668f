"""What can go wrong before a replay starts, and what the user is told."""

from __future__ import annotations


class ReplayUsageError(ValueError):
    """The replay asked for is impossible: a bad range, a missing topic or partition.

    The message states what is available (offsets, times, partitions) so the user can
    correct the command; the CLI prints it and exits 2.
    """
