"""The baseline: a bare FastAPI websocket echo on the server settings Hadir runs with.

Receive a frame, send it back, nothing else. Served by uvicorn with `uvicorn_options()`, so the
only difference from Hadir's ingest is Hadir's own work per frame (BENCHMARKS.md reports every
Hadir figure as a ratio to this server in the same run).

    python -m loadtest.echo_app --port 8101
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, WebSocket

app = FastAPI()


@app.websocket("/v1/live/{session_id}")
async def echo(ws: WebSocket, session_id: str) -> None:
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await ws.send_text(text)
        else:
            await ws.send_bytes(message.get("bytes") or b"")


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from app.cli import uvicorn_options

    p = argparse.ArgumentParser(prog="python -m loadtest.echo_app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8101)
    args = p.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options())  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
