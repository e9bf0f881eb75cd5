"""An MCP client built with the official Python SDK, for Sluice's tests.

usage: client.py URL [--header 'K: V' ...] [--call TOOL [--args JSON]] [--list-prompts]
                 [--read URI] [--watch URI ... --touch TOOL] [--mode auto|legacy|2026-07-28]
                 [--timeout SECONDS]

Connects to URL over Streamable HTTP, lists every tool (following nextCursor), optionally
calls one, and prints one JSON line: protocol_version, server_name, tools, call (and prompts
/ read when asked). Exits 1 with the error on stderr on any failure.

--watch (2026-07-28 only) listens with `Client.listen(resource_subscriptions=...)`, then calls
--touch with {"uri": first watched URI} and waits for the first event: `listen` in the output
holds the honoured URIs, the subscription id and the updated URI.

--mode is the SDK's: `auto` (its default) probes `server/discover` and adopts 2026-07-28
when the server speaks it, else falls back to the initialize handshake; `legacy` always
does the initialize handshake.
"""

import argparse
import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(args: argparse.Namespace) -> dict:
    async with create_mcp_http_client(headers=dict(args.header)) as http:
        transport = streamable_http_client(args.url, http_client=http)
        async with Client(transport, mode=args.mode, read_timeout_seconds=args.timeout) as client:
            tools: list[str] = []
            cursor = None
            for _ in range(1000):
                page = await client.list_tools(cursor=cursor) if cursor else await client.list_tools()
                tools.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            else:
                raise RuntimeError("tools/list never stopped returning a nextCursor")
            out = {
                "protocol_version": client.protocol_version,
                "server_name": client.server_info.name if client.server_info else None,
                "tools": tools,
                "call": None,
            }
            if args.call:
                out["call"] = dump(await client.call_tool(args.call, json.loads(args.args)))
            if args.list_prompts:
                prompts: list[str] = []
                cursor = None
                for _ in range(1000):
                    page = await client.list_prompts(cursor=cursor) if cursor else await client.list_prompts()
                    prompts.extend(p.name for p in page.prompts)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                out["prompts"] = prompts
            if args.read:
                out["read"] = dump(await client.read_resource(args.read))
            if args.watch:
                async with client.listen(resource_subscriptions=args.watch) as sub:
                    await client.call_tool(args.touch, {"uri": args.watch[0]})
                    event = await asyncio.wait_for(anext(sub), args.timeout)
                    out["listen"] = {
                        "honored": sub.honored.resource_subscriptions or [],
                        "subscription_id": sub.subscription_id,
                        "updated": getattr(event, "uri", repr(event)),
                    }
            return out


def leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups from the SDK's task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--header", type=header, action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("--call", help="tool to call after listing")
    p.add_argument("--args", default="{}", help="JSON object of the call's arguments")
    p.add_argument("--list-prompts", action="store_true")
    p.add_argument("--read", metavar="URI", help="resource to read")
    p.add_argument("--watch", metavar="URI", action="append", default=[], help="listen for its updates")
    p.add_argument("--touch", metavar="TOOL", help="tool that updates the first --watch URI")
    p.add_argument("--mode", default="auto", help="auto (default), legacy or 2026-07-28")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    try:
        args = p.parse_args()
    except SystemExit as e:  # usage errors exit 1 like every other failure (--help: 0)
        sys.exit(1 if e.code else 0)
    try:
        json.loads(args.args)
        print(json.dumps(asyncio.run(run(args))), flush=True)
    except BaseException as e:  # noqa: BLE001 - report anything, exit 1
        for leaf in leaves(e):
            print(f"client failed: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
