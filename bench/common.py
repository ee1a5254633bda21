"""Small helpers shared by the benchmark scripts (no third-party imports)."""

from __future__ import annotations

import platform
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else whatever ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def wait_listening(proc: subprocess.Popen, port: int, what: str, log_tail: Callable[[], str],
                   timeout_s: float = 60.0) -> None:
    """Wait until ``proc`` accepts connections on 127.0.0.1:``port``; SystemExit with its log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}: {log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not listen within {timeout_s:.0f} s: {log_tail()}")


@dataclass
class Stats:
    """What the simulated participants of one load phase saw."""

    save_ms: list[float] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    acked: set[Any] = field(default_factory=set)  # the acknowledged answers' ids
    sessions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class SessionFailed(Exception):
    """A simulated session gave up (the reason is counted in ``Stats.errors``)."""
