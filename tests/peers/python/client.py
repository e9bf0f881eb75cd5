"""An MCP client built with the official Python SDK, for Sluice's tests.

Connects to URL over Streamable HTTP, lists every tool (following pagination), optionally
calls one, and prints one JSON line: protocol_version, server_name, tools, call (and prompts
/ read when asked). Exits 1 with the error on stderr on any failure.
"""

import argparse
import asyncio
import json
import sys

from mcp import Client


async def run(args: argparse.Namespace) -> dict:
    async with Client(args.url) as client:
        tools: list[str] = []
        cursor = None
        for _ in range(1000):
            page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
            tools.extend(t.name for t in page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        out = {
            "protocol_version": client.protocol_version,
            "server_name": client.server_info.name if client.server_info else None,
            "tools": tools,
            "call": None,
        }
        if args.call:
            result = await client.call_tool(args.call, json.loads(args.args))
            out["call"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if args.list_prompts:
            prompts = await client.list_prompts()
            out["prompts"] = [p.name for p in prompts.prompts]
        if args.read:
            read = await client.read_resource(args.read)
            out["read"] = read.model_dump(mode="json", by_alias=True, exclude_none=True)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--call")
    p.add_argument("--args", default="{}")
    p.add_argument("--list-prompts", action="store_true")
    p.add_argument("--read")
    args = p.parse_args()
    try:
        print(json.dumps(asyncio.run(run(args))))
    except BaseException as e:  # noqa: BLE001 - report anything, exit 1
        print(f"client failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
