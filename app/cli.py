"""`hadir` command line: serve, migrate, keys, demo, purge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from app.settings import get_settings


@contextlib.contextmanager
def service_urls() -> Iterator[tuple[str, str]]:
    """DATABASE_URL and REDIS_URL, starting embedded servers for whichever is unset."""
    settings = get_settings()
    with contextlib.ExitStack() as stack:
        db_url, redis_url = settings.database_url, settings.redis_url
        if not db_url:
            from app.embedded import embedded_postgres

            db_url = stack.enter_context(embedded_postgres(settings.data_dir))
            print(f"embedded PostgreSQL under {settings.data_dir}/pg", file=sys.stderr)
        if not redis_url:
            from app.embedded import embedded_redis

            redis_url = stack.enter_context(embedded_redis(settings.data_dir))
            print(f"embedded Redis under {settings.data_dir}/redis", file=sys.stderr)
        os.environ["DATABASE_URL"] = db_url
        os.environ["REDIS_URL"] = redis_url
        get_settings.cache_clear()
        yield db_url, redis_url


def uvicorn_options() -> dict[str, object]:
    """The server settings the hot path was measured with (MEASUREMENTS.md)."""
    settings = get_settings()
    return {
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,  # tiny frames: compression halves throughput
        "ws_max_size": settings.max_frame_bytes,  # larger frames are closed with 1009
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.migrate import upgrade

    if args.role:
        os.environ["HADIR_ROLE"] = args.role
    with service_urls() as (db_url, _):
        upgrade(db_url)
        print(f"Hadir listening on http://{args.host}:{args.port}", file=sys.stderr)
        uvicorn.run(
            "app.main:build",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **uvicorn_options(),  # type: ignore[arg-type]
        )
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    """The background work without HTTP: archiver, finaliser, scheduler, LMS outbox."""
    import signal

    from app.main import create_app
    from app.migrate import upgrade

    os.environ["HADIR_ROLE"] = "worker"
    with service_urls() as (db_url, _redis):
        upgrade(db_url)
        app = create_app(get_settings())

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            async with app.router.lifespan_context(app):
                print(
                    "hadir worker running (archiver, finaliser, scheduler, outbox)",
                    file=sys.stderr,
                    flush=True,
                )
                await stop.wait()

        asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    with service_urls() as (db_url, _redis):
        upgrade(db_url)
        print("database schema is at head", file=sys.stderr)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.kit.auth import create_key
    from app.kit.db import make_engine
    from app.migrate import upgrade

    async def run(url: str) -> str:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await create_key(conn, args.name, list(args.scope))
        finally:
            await engine.dispose()

    with service_urls() as (db_url, _redis):
        upgrade(db_url)
        try:
            key = asyncio.run(run(db_url))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(key)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    return run_demo(
        host=args.host,
        port=args.port,
        learners=args.learners,
        seed=args.seed,
        exit_after=args.exit,
    )


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete events and records past the policy's `retention` (idempotent)."""
    from app.finalise.retention import purge_with
    from app.kit.db import make_engine
    from app.migrate import upgrade

    async def run(url: str) -> str:
        engine = make_engine(url, pool_size=1)
        try:
            return str(await purge_with(engine))
        finally:
            await engine.dispose()

    with service_urls() as (db_url, _redis):
        upgrade(db_url)
        print(asyncio.run(run(db_url)))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hadir", description="Real-time attendance telemetry.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP + websocket server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="server processes")
    s.add_argument(
        "--role",
        choices=("all", "ingest"),
        default=None,
        help="ingest: leave archiving and finalisation to `hadir worker` processes",
    )
    s.set_defaults(func=cmd_serve)
    w = sub.add_parser("worker", help="run the background work (archive, finalise) without HTTP")
    w.set_defaults(func=cmd_worker)
    m = sub.add_parser("migrate", help="apply database migrations")
    m.set_defaults(func=cmd_migrate)
    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create an API key and print it (shown once)")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scope", nargs="+", required=True, help="schedule:write events:import ...")
    kc.set_defaults(func=cmd_keys_create)
    d = sub.add_parser("demo", help="run the service with a simulated 3-minute live class")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--learners", type=int, default=24)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--exit", action="store_true", help="stop after printing the results")
    d.set_defaults(func=cmd_demo)
    pg = sub.add_parser("purge", help="delete events and records past their retention")
    pg.set_defaults(func=cmd_purge)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("alembic", "pgserver", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
