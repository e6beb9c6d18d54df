"""The benchmark of BENCHMARKS.md: Hadir and the echo baseline under the same load, same run.

Starts both servers pinned to core 0 (`taskset -c 0`, the echo with `uvicorn_options()`),
then for each repetition drives each of them, one after the other, with the generator pinned
to core 1: at full speed (window-bound), at each offered rate of `--rates`, and at half of the
rate Hadir itself reached in that repetition, and at 0.2 × the echo's maximum (`target-half`:
half of the 0.4 × echo that ingest must reach). Every result goes to `--out` (JSON); medians and
ratios to the echo are printed as a markdown table.

    python -m loadtest.bench --label after --runs 3 --out docs/bench/after.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from redis import Redis

from loadtest import proc

PY = sys.executable
TOKEN_SECRET = "loadtest-token-secret-0123456789abcdef"
ADMIN_KEY = "loadtest-admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def server_env(database_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        HADIR_REDIS_PREFIX=prefix,
        HADIR_ADMIN_KEY=ADMIN_KEY,
        HADIR_TOKEN_SECRET=TOKEN_SECRET,
        # Throughput runs send far above a browser's 20 events/s per connection.
        HADIR_RATE_LIMIT_PER_S="1000000",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def started(
    args: list[str], env: dict[str, str], health: str | None, log: Path, core: str = "0"
) -> Iterator[int]:
    """A server subprocess pinned to `core` (0: the server core); yields its pid."""
    with log.open("w") as out:
        p = subprocess.Popen(["taskset", "-c", core, *args], env=env, stdout=out, stderr=out)
        try:
            if health is not None:
                wait_ready(health)
            else:
                time.sleep(3.0)
            yield p.pid
        finally:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def ensure_database(admin_dsn: str, name: str) -> str:
    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base = admin_dsn.rsplit("/", 1)[0].split("://", 1)[1]
    return f"postgresql+asyncpg://{base}/{name}"


def generator_command(
    target: str, port: int, pid: int, prefix: str, redis_url: str, out: Path, core: str, **kw: Any
) -> list[str]:
    """`loadtest.run` against one server, pinned to `core`, its result JSON to `out`."""
    cmd = [
        "taskset",
        "-c",
        core,
        PY,
        "-m",
        "loadtest.run",
        "--target",
        target,
        "--url",
        f"http://127.0.0.1:{port}",
        "--server-pid",
        str(pid),
        "--admin-key",
        ADMIN_KEY,
        "--token-secret",
        TOKEN_SECRET,
        "--redis-url",
        redis_url,
        "--redis-prefix",
        prefix,
        "--json",
        str(out),
        "--quiet",
    ]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


def drive(target: str, port: int, pid: int, prefix: str, redis_url: str, **kw: Any) -> Any:
    out = Path(f"/tmp/loadtest-{secrets.token_hex(4)}.json")
    cmd = generator_command(target, port, pid, prefix, redis_url, out, "1", **kw)
    cpu0 = redis_cpu_s(redis_url)
    subprocess.run(cmd, check=False, timeout=300)
    result = json.loads(out.read_text())
    out.unlink()
    # The whole run's Redis CPU (warm-up and checks included) over the measured window's events:
    # an upper bound, comparable between runs of the same shape.
    acked = max(1, int(result.get("acked") or 0))
    result["redis_cpu_us_per_event"] = (redis_cpu_s(redis_url) - cpu0) * 1e6 / acked
    return result


def redis_cpu_s(redis_url: str) -> float:
    """User + system CPU seconds of the Redis server, from INFO."""
    r = Redis.from_url(redis_url)
    try:
        info = r.info("cpu")
    finally:
        r.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove a run's Redis keys."""
    r = Redis.from_url(redis_url)
    try:
        for key in r.scan_iter(match=f"{prefix}:*", count=1000):
            r.delete(key)
    finally:
        r.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (point, target), and Hadir's ratios to the echo at the same point."""
    rows: list[dict[str, Any]] = []
    order = {"max": -3.0, "half": -2.0, "target-half": -1.0}
    points = sorted({r["point"] for r in results}, key=lambda p: order.get(p, p))
    for point in points:
        med: dict[str, dict[str, float]] = {}
        for target in ("echo", "hadir"):
            rs = [r for r in results if r["point"] == point and r["target"] == target]
            med[target] = {
                k: median([r[k] for r in rs])
                for k in (
                    "offered_rate",
                    "events_per_s",
                    "ack_p50_ms",
                    "ack_p95_ms",
                    "ack_p99_ms",
                    "server_cpu_us_per_event",
                    "server_cpu_pct",
                    "generator_cpu_pct",
                )
            }
            med[target]["n"] = len(rs)
        e, h = med["echo"], med["hadir"]
        rows.append(
            {
                "point": point,
                "echo": e,
                "hadir": h,
                "throughput_ratio": h["events_per_s"] / e["events_per_s"],
                "cpu_ratio": h["server_cpu_us_per_event"] / e["server_cpu_us_per_event"],
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| offered | echo ev/s | Hadir ev/s | ratio | echo p50/p99 ms | Hadir p50/p99 ms "
        "| echo µs/ev | Hadir µs/ev | CPU ratio | gen CPU % (echo/Hadir) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        e, h = row["echo"], row["hadir"]
        offered = "max (window 8)" if row["point"] == "max" else f"{row['point']}"
        lines.append(
            f"| {offered} | {e['events_per_s']:,.0f} | {h['events_per_s']:,.0f} "
            f"| {row['throughput_ratio']:.2f} | {e['ack_p50_ms']:.1f} / {e['ack_p99_ms']:.1f} "
            f"| {h['ack_p50_ms']:.1f} / {h['ack_p99_ms']:.1f} "
            f"| {e['server_cpu_us_per_event']:.1f} | {h['server_cpu_us_per_event']:.1f} "
            f"| {row['cpu_ratio']:.2f} | {e['generator_cpu_pct']:.0f} / "
            f"{h['generator_cpu_pct']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__)
    p.add_argument("--label", default="run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rates", default="5000,10000,15000,20000", help="offered events/s")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--participants", type=int, default=10)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="hadir_bench")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--role",
        choices=("all", "ingest"),
        default="all",
        help="ingest: Hadir serves with --role ingest and a `hadir worker` (archiver, finaliser) "
        "runs on the generator's core 1; its CPU per event is reported apart",
    )
    p.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run `hadir worker` at this nice level (background work yields to live ingest)",
    )
    a = p.parse_args(argv)

    db_url = ensure_database(a.pg, a.database)
    prefix = f"bench{secrets.token_hex(3)}"
    env = server_env(db_url, a.redis_url, prefix)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    logs = Path("/tmp/loadtest-logs")
    logs.mkdir(exist_ok=True)
    echo_port, hadir_port = free_port(), free_port()
    load = {
        "sessions": a.sessions,
        "participants": a.participants,
        "duration": a.duration,
        "warmup": 2,
        "database_url": db_url,  # acked events are looked for in the archive too
    }
    results: list[dict[str, Any]] = []
    rates = [float(r) for r in a.rates.split(",") if r]
    try:
        with (
            started(
                [PY, "-m", "loadtest.echo_app", "--port", str(echo_port)],
                env,
                f"http://127.0.0.1:{echo_port}/docs",
                logs / "echo.log",
            ) as echo_pid,
            started(
                [PY, "-m", "app.cli", "serve", "--port", str(hadir_port), "--role", a.role],
                env,
                f"http://127.0.0.1:{hadir_port}/healthz",
                logs / "hadir.log",
            ) as hadir_pid,
            contextlib.ExitStack() as stack,
        ):
            worker_pid = None
            if a.role == "ingest":
                worker_pid = stack.enter_context(
                    started(
                        ["nice", "-n", str(a.worker_nice), PY, "-m", "app.cli", "worker"],
                        env,
                        None,
                        logs / "worker.log",
                        "1",
                    )
                )
                worker_cpu0 = proc.cpu_s(worker_pid)
            servers = {"echo": (echo_port, echo_pid), "hadir": (hadir_port, hadir_pid)}

            def point(rep: int, name: str | float, rate: float) -> dict[str, float]:
                got: dict[str, float] = {}
                for target in ("echo", "hadir"):
                    port, pid = servers[target]
                    r = drive(target, port, pid, prefix, a.redis_url, rate=rate, **load)
                    r["point"] = name
                    r["rep"] = rep
                    results.append(r)
                    check = r.get("check") or {}
                    print(
                        f"[{a.label} rep {rep}] {target:5} offered {rate or 'max':>7}: "
                        f"{r['events_per_s']:8.0f} ev/s p99 {r['ack_p99_ms']:6.1f} ms "
                        f"{r['server_cpu_us_per_event']:5.1f} µs/ev "
                        f"(redis {r['redis_cpu_us_per_event']:5.1f}) "
                        f"lost={check.get('lost', '-')} twice={check.get('counted_twice', '-')}",
                        file=sys.stderr,
                    )
                    got[target] = float(r["events_per_s"])
                return got

            for rep in range(a.runs):
                top = point(rep, "max", 0)
                for rate in rates:
                    point(rep, rate, rate)
                point(rep, "half", round(top["hadir"] / 2))
                # The target's own rate is 0.4 × the echo's max; half of it is 0.2 × that max.
                point(rep, "target-half", round(top["echo"] * 0.2))
            if worker_pid is not None:
                time.sleep(3.0)  # let the archive catch up
                acked = sum(int(r.get("acked", 0)) for r in results if r["target"] == "hadir")
                worker_us = (proc.cpu_s(worker_pid) - worker_cpu0) * 1e6 / max(1, acked)
                print(
                    f"worker (archiver, finaliser) CPU: {worker_us:.1f} µs per acked event",
                    file=sys.stderr,
                )
    finally:
        delete_prefix(a.redis_url, prefix)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"label": a.label, "results": results}))
    rows = summarise(results)
    print(table(rows))
    if a.out:
        Path(a.out).write_text(json.dumps({"label": a.label, "results": results, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
