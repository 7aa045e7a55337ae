"""Servers and commands in processes of their own, as a deployment runs them: gunicorn masters (a node each),
`flask --app app` commands, and what a server's search answers while it starts and follows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from helpers import REPO, free_port, http_get


def gunicorn(env: dict[str, str], workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A gunicorn master in a session of its own (so its workers can be killed with it); it and its base URL."""
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
                                   "--timeout", "60", "--graceful-timeout", "5", "app:app"],
                                  cwd=REPO, env={**env, "LOG_LEVEL": "INFO"}, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    return server, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything in its process group; SIGKILL what outlives a grace period."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            break
        try:
            process.wait(20)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(10)


def search_total(base: str, **params: str) -> int | None:
    """The `total` of a search answer, or None while the server does not answer 200."""
    try:
        status, body = http_get(f"{base}/api/v1/search?{urlencode({'per_page': 1, **params})}")
    except OSError:
        return None
    return json.loads(body)["total"] if status == 200 else None


def first_answer(server: subprocess.Popen[bytes], base: str, log: Path, seconds: float = 90,
                  **params: str) -> int:
    """The total of the first search the server answers with 200 (it may still be starting)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        total = search_total(base, **params)
        if total is not None:
            return total
        time.sleep(0.1)
    raise AssertionError(f"no answer in {seconds} s: {log.read_text()[-3000:]}")


def seconds_until(base: str, expected: int, since: float, seconds: float, **params: str) -> float:
    """How long after `since` (a time.monotonic()) the server's search total is `expected` (an AssertionError
    `seconds` after it)."""
    seen = None
    while (elapsed := time.monotonic() - since) < seconds:
        seen = search_total(base, **params)
        if seen == expected:
            return elapsed
        time.sleep(0.2)
    raise AssertionError(f"after {seconds} s the server finds {seen}, not {expected}")


def flask_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A `flask --app app` command in a process of its own, run to its end."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
