"""Small helpers shared by the benchmark scripts (no third-party imports at module level)."""

from __future__ import annotations

import asyncio
import platform
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable


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

    def latencies(self, elapsed: float) -> dict[str, Any]:
        """The phase's save and request percentiles (ms), request rate, retries and errors."""
        return {
            "save_p50_ms": percentile(self.save_ms, 50), "save_p99_ms": percentile(self.save_ms, 99),
            "save_max_ms": round(max(self.save_ms), 1) if self.save_ms else None,
            "request_p50_ms": percentile(self.request_ms, 50), "request_p99_ms": percentile(self.request_ms, 99),
            "requests_per_s": round(len(self.request_ms) / elapsed, 1),
            "p50_p99_ms_by_request": {kind: [percentile(v, 50), percentile(v, 99)] for kind, v in self.by_kind.items()},
            "retries": self.retries, "errors": self.errors,
        }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, rounded to 0.1 (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))], 1)


class SessionFailed(Exception):
    """A simulated session gave up (the reason is counted in ``Stats.errors``)."""


async def with_retries(stats: Stats, what: str, one_try: Callable[[], Awaitable[Any]], tries: int = 6) -> Any:
    """Run ``one_try`` until it returns something other than None (None: retry it; it may raise
    ``SessionFailed`` to give up at once). Network errors and time-outs are retried too; the waits between
    tries double from 50 ms up to 2 s. Every retry is counted in ``stats``."""
    import aiohttp

    delay = 0.05
    for _ in range(tries):
        try:
            result = await one_try()
            if result is not None:
                return result
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            stats.error(f"retried {type(exc).__name__}")
        stats.retries += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise SessionFailed(f"{what}: gave up after {tries} tries")


def record(stats: Stats, kind: str, started: float) -> float:
    """The milliseconds since ``started`` (``time.perf_counter``), kept in ``stats`` as one request of ``kind``."""
    ms = (time.perf_counter() - started) * 1000
    stats.request_ms.append(ms)
    stats.by_kind.setdefault(kind, []).append(ms)
    return ms
