"""The `hadir` command line, as an operator runs it: real processes, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_KEY, free_port

HADIR = [sys.executable, "-m", "app.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(extra)
    return env


def _wait_ready(port: int, proc: subprocess.Popen[bytes], wait: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if r.status_code == 200:
                body: dict[str, object] = r.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server never became ready")


def test_serve_without_urls_runs_on_embedded_servers_and_stops_them(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*HADIR, "serve", "--port", str(port)],
        env=_env(HADIR_DATA_DIR=str(data), HADIR_ADMIN_KEY=ADMIN_KEY),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = _wait_ready(port, proc)
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        r = httpx.put(
            f"http://127.0.0.1:{port}/v1/courses/c1",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={
                "title": "t",
                "policy": "platform",
                "delivery": "synchronous",
                "starts_on": "2026-01-01",
                "ends_on": "2026-02-01",
            },
        )
        assert r.status_code == 201, r.text
        assert (data / "pg" / "postmaster.pid").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert "embedded PostgreSQL" in output
    assert not (data / "pg" / "postmaster.pid").exists()  # stopped on exit


def test_serve_with_urls_uses_those_servers(database: str, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*HADIR, "serve", "--port", str(port)],
        env=_env(
            DATABASE_URL=database,
            REDIS_URL="redis://127.0.0.1:6379/0",
            HADIR_DATA_DIR=str(tmp_path / "unused"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(port, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode()
    assert "embedded" not in output
    assert not (tmp_path / "unused").exists()


def test_keys_create_prints_a_working_key(database: str) -> None:
    out = subprocess.run(
        [*HADIR, "keys", "create", "--name", "lms", "--scope", "results:read", "schedule:write"],
        env=_env(DATABASE_URL=database, REDIS_URL="redis://127.0.0.1:6379/0"),
        capture_output=True,
        check=True,
    )
    key = out.stdout.decode().strip()
    assert key.startswith("hdr_")
    assert len(key) > 30


def test_keys_create_refuses_an_unknown_scope(database: str) -> None:
    out = subprocess.run(
        [*HADIR, "keys", "create", "--name", "x", "--scope", "everything"],
        env=_env(DATABASE_URL=database, REDIS_URL="redis://127.0.0.1:6379/0"),
        capture_output=True,
    )
    assert out.returncode == 2
    assert b"unknown scope" in out.stderr


@pytest.mark.parametrize("command", [["migrate"]])
def test_migrate_is_idempotent(database: str, command: list[str]) -> None:
    env = _env(DATABASE_URL=database, REDIS_URL="redis://127.0.0.1:6379/0")
    for _ in range(2):
        subprocess.run([*HADIR, *command], env=env, check=True, capture_output=True)
