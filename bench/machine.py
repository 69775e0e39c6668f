"""What every benchmark's JSON says of the machine it ran on: on 2 shared cores a figure
means little without the load beside it."""

from __future__ import annotations

import os
import platform
from typing import Any


def machine() -> dict[str, Any]:
    """CPUs, the 1-minute load average now, and the Python version."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
