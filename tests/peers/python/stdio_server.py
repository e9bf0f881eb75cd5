"""A stdio MCP server built with the official Python SDK (`mcp`), for the bridge's tests.

usage: stdio_server.py [--name NAME]

Speaks MCP over stdin/stdout (one JSON-RPC message per line), as most MCP servers do; the
bridge (`sluice bridge -- .venv/bin/python stdio_server.py`) serves it as Streamable HTTP.
Tools:
- echo(text) -> "NAME:text";
- slow_echo(text, seconds) -> "NAME:text" after a delay (concurrent calls overlap);
- progress(steps) -> `steps` progress notifications, then "progressed N";
- announce() -> sends notifications/tools/list_changed and a log message, then "announced";
- pid() -> the process id (a restarted server answers another one);
- crash(code) -> prints "crashing" on stderr and exits the process with `code` at once;
- env(variable) -> the variable's value (only with --env-tool).
Each start prints "stdio server NAME started" on stderr. stdout carries only MCP messages.
"""

import argparse
import asyncio
import os
import sys

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer


def build(name: str, env_tool: bool = False) -> MCPServer:
    server = MCPServer(name=f"py-stdio-{name}", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Echo text back, prefixed with the server name."""
        return f"{name}:{text}"

    @server.tool()
    async def slow_echo(text: str, seconds: float) -> str:
        """Echo text back after a delay."""
        await asyncio.sleep(seconds)
        return f"{name}:{text}"

    @server.tool()
    async def progress(steps: int, ctx: Context) -> str:
        """Send progress notifications, then answer."""
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        return f"progressed {steps}"

    @server.tool()
    async def announce(ctx: Context) -> str:
        """Send notifications/tools/list_changed and a log message (unsolicited on stdio)."""
        await ctx.request_context.session.send_notification(types.ToolListChangedNotification())
        await ctx.info("announced")
        return "announced"

    @server.tool()
    def pid() -> str:
        """This process's id."""
        return str(os.getpid())

    if env_tool:

        @server.tool()
        def env(variable: str) -> str:
            """The value of an environment variable of this process ("" when unset)."""
            return os.environ.get(variable, "")

    @server.tool()
    def crash(code: int = 3) -> str:
        """Exit the process at once with `code` (no answer is ever sent)."""
        print("crashing", file=sys.stderr, flush=True)
        os._exit(code)

    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", default="py")
    p.add_argument("--env-tool", action="store_true", help="add env(variable)")
    args = p.parse_args()
    print(f"stdio server {args.name} started", file=sys.stderr, flush=True)
    build(args.name, args.env_tool).run("stdio")


if __name__ == "__main__":
    main()
