"""An MCP upstream built with the official Python SDK (`mcp` from PyPI), for Sluice's tests.

Serves Streamable HTTP at http://127.0.0.1:PORT/mcp, either with sessions and SSE
(--mode stateful, the SDK default) or stateless with JSON responses (--mode stateless).
Tools prove routing (echo names the server), per-session state (remember/recall), failures
(fail, slow for killing mid-call) and progress notifications.

The port is bound only once the app is ready (uvicorn runs the lifespan first), so polling
the TCP port is a sound readiness check. Logs go to stderr; stdout stays empty.
MCPServer answers tools/list in one page; --page-size N makes it paginate (opaque cursor).
--resources-only serves resources and nothing else (no tools, no prompts): a text one, a
binary one and a second text one whose name differs from the first only in case.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

import mcp_types as types
import uvicorn
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer


def session_key(ctx: Context) -> str | None:
    """The MCP session id the request carried (per-session state lives under it); None
    without one (2026-07-28 clients have no sessions)."""
    request = ctx.request_context.request
    return request.headers.get("mcp-session-id") if request is not None else None


# jti of tokens the upstream no longer accepts (see revoke_my_token).
REVOKED: set[str] = set()


class RequireBearer:
    """ASGI middleware: every request needs `Authorization: Bearer <JWT>` signed by one of
    `issuers` (keys from `{issuer}/jwks`, verified with PyJWT) and not revoked; anything else
    gets 401 with a `WWW-Authenticate` challenge, as a protected MCP server answers."""

    def __init__(self, app, issuers: list[str]):
        import jwt

        self.app = app
        self.jwt = jwt
        self.clients = {i: jwt.PyJWKClient(f"{i}/jwks", cache_keys=True) for i in issuers}

    def valid(self, header: str) -> bool:
        if not header.lower().startswith("bearer "):
            return False
        token = header[7:].strip()
        try:
            iss = self.jwt.decode(token, options={"verify_signature": False}).get("iss")
            client = self.clients.get(iss)
            if client is None:
                return False
            key = client.get_signing_key_from_jwt(token)
            claims = self.jwt.decode(
                token, key.key, algorithms=["RS256", "ES256"], options={"verify_aud": False}
            )
        except Exception as e:  # noqa: BLE001 - any failure is a refusal
            print(f"bearer refused: {e}", file=sys.stderr, flush=True)
            return False
        return claims.get("jti") not in REVOKED

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if self.valid(headers.get("authorization", "")):
            return await self.app(scope, receive, send)
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
        })
        await send({"type": "http.response.body", "body": b"a valid bearer token is required"})


class ModernOnly:
    """Serves only protocol revision 2026-07-28: a request without that revision's
    MCP-Protocol-Version header (an `initialize`, any handshake-era message, a GET stream) is
    refused the way the revision refuses an unsupported version, before the SDK app sees it.
    The SDK itself always serves both eras; this makes it a server of the new era only."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
            if version != "2026-07-28":
                body = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {
                            "code": -32022,
                            "message": "Unsupported protocol version",
                            "data": {"supported": ["2026-07-28"], "requested": version or None},
                        },
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def build_resources_only(name: str) -> MCPServer:
    """Only resources: `docs://guide` (text), `docs://logo.png` (a blob) and `docs://guide-v2`
    (text, named like the first but for case)."""
    server = MCPServer(name=f"py-{name}", log_level="WARNING")

    @server.resource(
        "docs://guide",
        name="User Guide",
        description="How to use the docs.",
        mime_type="text/plain",
    )
    def guide() -> str:
        return f"guide of {name}"

    @server.resource("docs://logo.png", name="logo.png", mime_type="image/png")
    def logo() -> bytes:
        return b"\x89PNG\r\n\x1a\n" + name.encode()

    @server.resource("docs://guide-v2", name="user guide", mime_type="text/plain")
    def guide_v2() -> str:
        return f"guide v2 of {name}"

    return server


def build(
    name: str,
    stateful: bool,
    filler: int,
    page_size: int = 0,
    revocable: bool = False,
    tally: bool = False,
    modern_only: bool = False,
    touchable: bool = False,
) -> MCPServer:
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

    if modern_only:

        @server.tool()
        def confirm() -> types.InputRequiredResult:
            """Asks the client to confirm (an InputRequiredResult of 2026-07-28)."""
            schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
            ask = types.ElicitRequest(
                params=types.ElicitRequestFormParams(message="Sure?", requested_schema=schema)  # type: ignore[arg-type]
            )
            return types.InputRequiredResult(input_requests={"ok": ask}, request_state="asked")

    if tally:
        calls = [0]

        @server.tool()
        def tally(text: str) -> str:
            """Count this call: the answer is the calls so far and the text's length."""
            calls[0] += 1
            return f"{calls[0]}:{len(text)}"

        @server.tool()
        def tallied() -> str:
            """How many times tally ran."""
            return str(calls[0])

    if revocable:

        @server.tool()
        def revoke_my_token(ctx: Context) -> str:
            """Revoke the bearer token of this call (its jti): later requests with it get 401."""
            import jwt

            request = ctx.request_context.request
            header = request.headers.get("authorization", "") if request is not None else ""
            jti = jwt.decode(header[7:], options={"verify_signature": False}).get("jti", "")
            REVOKED.add(jti)
            return jti

    @server.tool()
    def fail() -> types.CallToolResult:
        """Fail on purpose: a tool error result (isError), not a protocol error."""
        # A raised exception would reach the client as "Error executing tool fail[: ...]".
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="failed on purpose")], is_error=True
        )

    @server.tool()
    def remember(value: str, ctx: Context) -> str:
        """Remember a value in this session."""
        if not stateful:
            return "stateless"
        key = session_key(ctx)
        if key is None:
            return "no session"
        memory[key] = value
        return "ok"

    @server.tool()
    def recall(ctx: Context) -> str:
        """Recall the value remembered in this session."""
        if not stateful:
            return "stateless"
        key = session_key(ctx)
        if key is None:
            return "no session"
        return memory.get(key, "nothing")

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

    if touchable:

        @server.tool()
        async def touch(uri: str, ctx: Context) -> str:
            """Announce that the resource at `uri` changed, to its 2026-07-28 listeners."""
            await ctx.notify_resource_updated(uri)
            return f"touched {uri}"

    if page_size > 0:

        async def list_tools_paged(
            _ctx: object, params: types.PaginatedRequestParams
        ) -> types.ListToolsResult:
            tools = await server.list_tools()
            try:
                start = int(params.cursor or 0)
            except ValueError:
                raise MCPError(types.INVALID_PARAMS, f"bad cursor {params.cursor!r}") from None
            end = start + page_size
            return types.ListToolsResult(
                tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None
            )

        # MCPServer's own handler ignores the cursor; the low-level server takes a replacement.
        server._lowlevel_server.add_request_handler(
            "tools/list", types.PaginatedRequestParams, list_tools_paged
        )

    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="py")
    p.add_argument("--mode", choices=["stateful", "stateless"], default="stateful")
    p.add_argument("--filler", type=int, default=0, help="add tools filler_0..filler_{N-1}")
    p.add_argument("--page-size", type=int, default=0, help="paginate tools/list (0: one page)")
    p.add_argument("--tally", action="store_true", help="add the tools tally and tallied")
    p.add_argument(
        "--modern-only",
        action="store_true",
        help="serve protocol revision 2026-07-28 only (and add the tool confirm)",
    )
    p.add_argument(
        "--touch",
        action="store_true",
        help="add a tool touch(uri) announcing resource updates on subscriptions/listen",
    )
    p.add_argument(
        "--resources-only",
        action="store_true",
        help="serve only resources (a text and a binary one), no tools or prompts",
    )
    p.add_argument("--certfile", help="serve HTTPS with this certificate")
    p.add_argument("--keyfile", help="private key of --certfile")
    p.add_argument(
        "--require-bearer",
        action="append",
        default=[],
        metavar="ISSUER",
        help="refuse requests without a JWT of this issuer (repeatable)",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stateful = args.mode == "stateful"
    server = (
        build_resources_only(args.name)
        if args.resources_only
        else build(
            args.name,
            stateful,
            args.filler,
            args.page_size,
            bool(args.require_bearer),
            args.tally,
            args.modern_only,
            args.touch,
        )
    )
    app = server.streamable_http_app(stateless_http=not stateful, json_response=not stateful)
    if args.require_bearer:
        app = RequireBearer(app, args.require_bearer)
    if args.modern_only:
        app = ModernOnly(app)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        # SIGTERM: stop accepting, give open requests and SSE streams this long, then exit.
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
