"""An MCP upstream built with the official Python SDK (`mcp` from PyPI), for Sluice's tests.

Serves Streamable HTTP at http://127.0.0.1:PORT/mcp, either with sessions and SSE
(--mode stateful, the SDK default) or stateless with JSON responses (--mode stateless).
Tools prove routing (echo names the server), per-session state (remember/recall), failures
(fail, slow for killing mid-call) and progress notifications.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

import mcp_types as types
import uvicorn
from mcp.server.mcpserver import Context, MCPServer


def session_key(ctx: Context) -> str:
    """The MCP session id the request carried (per-session state lives under it)."""
    request = ctx.request_context.request
    return str(request.headers.get("mcp-session-id")) if request is not None else "none"


def build(name: str, stateful: bool, filler: int) -> MCPServer:
    server = MCPServer(name=f"py-{name}", log_level="WARNING")
    memory: dict[str, str] = {}

    @server.tool()
    def echo(text: str) -> str:
        """Echo text back, prefixed with the server name."""
        return f"{name}:{text}"

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answer after a delay."""
        print("slow started", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        return "done"

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Send progress notifications, then answer."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return f"progressed {steps}"

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named `grown` and announce the change on this request's stream."""
        if not any(t.name == "grown" for t in server._tool_manager.list_tools()):
            server.add_tool(lambda: "grown", name="grown", description="Added at run time.")
        await ctx.request_context.session.send_notification(
            types.ToolListChangedNotification(),
            related_request_id=ctx.request_context.request_id,
        )
        return "grown"

    @server.tool()
    async def progress_then_wait(path: str, ctx: Context) -> str:
        """Report progress, then hold the answer until the file at `path` exists (at most 60 s)."""
        await ctx.report_progress(1, 2, "half way")
        for _ in range(6000):
            if os.path.exists(path):
                return "released"
            await asyncio.sleep(0.01)
        return "timed out waiting"

    @server.tool()
    def seen_headers(ctx: Context) -> str:
        """The HTTP request headers this call arrived with, as JSON."""
        request = ctx.request_context.request
        return json.dumps(dict(request.headers) if request is not None else {})

    @server.tool()
    def fail() -> str:
        """Fail on purpose."""
        raise RuntimeError("failed on purpose")

    @server.tool()
    def remember(value: str, ctx: Context) -> str:
        """Remember a value in this session."""
        if not stateful:
            return "stateless"
        memory[session_key(ctx)] = value
        return "ok"

    @server.tool()
    def recall(ctx: Context) -> str:
        """Recall the value remembered in this session."""
        if not stateful:
            return "stateless"
        return memory.get(session_key(ctx), "nothing")

    for i in range(filler):
        def make(i: int):
            def filler_tool() -> str:
                return f"filler {i}"
            filler_tool.__name__ = f"filler_{i}"
            filler_tool.__doc__ = f"Filler tool {i}."
            return filler_tool
        server.tool(name=f"filler_{i}")(make(i))

    @server.prompt()
    def greet(who: str) -> str:
        """Greet someone."""
        return f"Hello, {who}, from {name}!"

    @server.resource(f"note://{name}/readme")
    def readme() -> str:
        """The readme of this server."""
        return f"readme of {name}"

    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="py")
    p.add_argument("--mode", choices=["stateful", "stateless"], default="stateful")
    p.add_argument("--filler", type=int, default=0)
    p.add_argument("--certfile", help="serve HTTPS with this certificate")
    p.add_argument("--keyfile", help="private key of --certfile")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stateful = args.mode == "stateful"
    server = build(args.name, stateful, args.filler)
    app = server.streamable_http_app(stateless_http=not stateful, json_response=not stateful)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )


if __name__ == "__main__":
    main()
