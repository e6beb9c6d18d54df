"""Scaling over processes: N ingest servers, each on a core of its own, against one Redis.

For each N of `--processes`, starts N `hadir serve --role ingest` instances (core i each; a
load balancer in front of them would do the same as giving each its own generator), one
`hadir worker` (archiver, finaliser) and N echo servers, then drives all N of a kind at once,
each with its own `loadtest.run` generator (window-bound, `--sessions` × `--participants`
connections each) on the cores the servers leave free. Reports the summed events/s, the
scaling efficiency against N = 1 (total ÷ (N × the one-process total)), the servers' CPU per
event, the Redis server's CPU per event and acked events lost / counted twice (0 / 0).

    python -m loadtest.bench_scale --processes 1,2,4,8 --runs 3 --out docs/bench/scale.json

A machine needs at least 2N cores for N (the servers' N, then room for the generators,
Redis, PostgreSQL and the worker); where it has fewer, the generators share the remaining
cores, or every core, and the table marks the row oversubscribed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.bench import (
    PY,
    delete_prefix,
    ensure_database,
    free_port,
    generator_command,
    redis_cpu_s,
    server_env,
    started,
)


@dataclass(frozen=True)
class Cores:
    """Where the processes of one N run: a core per server, the rest shared."""

    servers: list[str]
    generators: list[str]
    worker: str
    oversubscribed: bool


def plan(n: int, ncpu: int) -> Cores:
    """Servers on cores 0..n-1; generators round robin over the cores left (all cores when
    none are left); the worker, Redis and PostgreSQL float over the cores left."""
    if not 1 <= n <= ncpu:
        raise ValueError(f"{n} servers need {n} cores; this machine has {ncpu}")
    rest = list(range(n, ncpu)) or list(range(ncpu))
    return Cores(
        servers=[str(i) for i in range(n)],
        generators=[str(rest[i % len(rest)]) for i in range(n)],
        worker=",".join(map(str, rest)),
        oversubscribed=2 * n > ncpu,
    )


def drive_all(
    target: str,
    servers: list[tuple[int, int]],
    cores: Cores,
    prefix: str,
    redis_url: str,
    **kw: Any,
) -> dict[str, Any]:
    """One generator per server, all started together; their results summed."""
    outs = [Path(f"/tmp/loadtest-scale-{secrets.token_hex(4)}.json") for _ in servers]
    cpu0 = redis_cpu_s(redis_url)
    procs = [
        subprocess.Popen(generator_command(target, port, pid, prefix, redis_url, out, core, **kw))
        for (port, pid), out, core in zip(servers, outs, cores.generators, strict=True)
    ]
    for p in procs:
        p.wait(timeout=600)
    results = [json.loads(out.read_text()) for out in outs]
    for out in outs:
        out.unlink()
    acked = sum(int(r.get("acked") or 0) for r in results)
    events = sum(float(r["events_per_s"]) * float(r["window_s"]) for r in results)
    checks = [r.get("check") or {} for r in results]
    return {
        "target": target,
        "processes": len(servers),
        "oversubscribed": cores.oversubscribed,
        "events_per_s": sum(float(r["events_per_s"]) for r in results),
        "per_process": [float(r["events_per_s"]) for r in results],
        "ack_p99_ms": max(float(r["ack_p99_ms"] or 0.0) for r in results),
        "server_cpu_us_per_event": sum(float(r["server_cpu_s"]) for r in results)
        * 1e6
        / max(1.0, events),
        "redis_cpu_us_per_event": (redis_cpu_s(redis_url) - cpu0) * 1e6 / max(1, acked),
        "lost": sum(int(c.get("lost", 0)) for c in checks),
        "counted_twice": sum(int(c.get("counted_twice", 0)) for c in checks),
        "runs": results,
    }


@contextlib.contextmanager
def fleet(n: int, cores: Cores, env: dict[str, str], logs: Path) -> Iterator[dict[str, Any]]:
    """N Hadir ingest servers, N echo servers and one worker, each pinned as `cores` says."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, list[tuple[int, int]]] = {"echo": [], "hadir": []}
        for i, core in enumerate(cores.servers):
            port = free_port()
            pid = stack.enter_context(
                started(
                    [PY, "-m", "loadtest.echo_app", "--port", str(port)],
                    env,
                    f"http://127.0.0.1:{port}/docs",
                    logs / f"echo-{n}-{i}.log",
                    core,
                )
            )
            servers["echo"].append((port, pid))
            port = free_port()
            pid = stack.enter_context(
                started(
                    [PY, "-m", "app.cli", "serve", "--port", str(port), "--role", "ingest"],
                    env,
                    f"http://127.0.0.1:{port}/healthz",
                    logs / f"hadir-{n}-{i}.log",
                    core,
                )
            )
            servers["hadir"].append((port, pid))
        stack.enter_context(
            started(
                ["nice", "-n", "10", PY, "-m", "app.cli", "worker"],
                env,
                None,
                logs / f"worker-{n}.log",
                cores.worker,
            )
        )
        yield servers


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (N, target); efficiency against the per-process median of the smallest N."""
    keys = ("events_per_s", "ack_p99_ms", "server_cpu_us_per_event", "redis_cpu_us_per_event")
    rows: list[dict[str, Any]] = []
    for n in sorted({int(r["processes"]) for r in results}):
        row: dict[str, Any] = {"processes": n, "oversubscribed": False}
        for target in ("echo", "hadir"):
            rs = [r for r in results if r["processes"] == n and r["target"] == target]
            med: dict[str, Any] = {k: statistics.median(float(r[k]) for r in rs) for k in keys}
            med["lost"] = sum(int(r["lost"]) for r in rs)
            med["counted_twice"] = sum(int(r["counted_twice"]) for r in rs)
            med["runs"] = len(rs)
            row[target] = med
            row["oversubscribed"] |= any(bool(r["oversubscribed"]) for r in rs)
        rows.append(row)
    for target in ("echo", "hadir"):
        per_process = rows[0][target]["events_per_s"] / rows[0]["processes"] if rows else 0.0
        for row in rows:
            row[target]["efficiency"] = row[target]["events_per_s"] / (
                row["processes"] * per_process
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| processes | Hadir ev/s | efficiency | echo ev/s | efficiency | Hadir ÷ echo "
        "| Hadir µs/ev (servers) | Redis µs/ev | Hadir p99 ms (worst) | lost / twice |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        e, h = row["echo"], row["hadir"]
        n = f"{row['processes']}{' (oversubscribed)' if row['oversubscribed'] else ''}"
        lines.append(
            f"| {n} | {h['events_per_s']:,.0f} | {h['efficiency']:.2f} "
            f"| {e['events_per_s']:,.0f} | {e['efficiency']:.2f} "
            f"| {h['events_per_s'] / e['events_per_s']:.2f} "
            f"| {h['server_cpu_us_per_event']:.1f} | {h['redis_cpu_us_per_event']:.1f} "
            f"| {h['ack_p99_ms']:.1f} | {h['lost']} / {h['counted_twice']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench_scale", description=__doc__)
    p.add_argument("--processes", default="1,2,4,8", help="server processes per step")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sessions", type=int, default=10, help="per generator")
    p.add_argument("--participants", type=int, default=10)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--database", default="hadir_bench")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    ncpu = len(os.sched_getaffinity(0))
    steps = [int(x) for x in a.processes.split(",") if x]
    db_url = ensure_database(a.pg, a.database)
    prefix = f"scale{secrets.token_hex(3)}"
    env = server_env(db_url, a.redis_url, prefix)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    logs = Path("/tmp/loadtest-logs")
    logs.mkdir(exist_ok=True)
    load = {
        "sessions": a.sessions,
        "participants": a.participants,
        "duration": a.duration,
        "warmup": 2,
        "database_url": db_url,
    }
    results: list[dict[str, Any]] = []
    try:
        for n in steps:
            cores = plan(n, ncpu)
            with fleet(n, cores, env, logs) as servers:
                for rep in range(a.runs):
                    for target in ("echo", "hadir"):
                        r = drive_all(target, servers[target], cores, prefix, a.redis_url, **load)
                        r["rep"] = rep
                        results.append(r)
                        print(
                            f"[N={n} rep {rep}] {target:5} {r['events_per_s']:9.0f} ev/s "
                            f"({' '.join(f'{x:.0f}' for x in r['per_process'])}) "
                            f"p99 {r['ack_p99_ms']:6.1f} ms "
                            f"redis {r['redis_cpu_us_per_event']:5.1f} µs/ev "
                            f"lost={r['lost']} twice={r['counted_twice']}",
                            file=sys.stderr,
                        )
                time.sleep(1.0)
    finally:
        delete_prefix(a.redis_url, prefix)
    rows = summarise(results)
    print(table(rows))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(
            json.dumps({"ncpu": ncpu, "results": results, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
