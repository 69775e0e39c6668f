"""The exit codes of every vcstream process, one meaning each (STYLE: 0 success,
1 a runtime failure, 2 bad usage or configuration, before anything connects)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
