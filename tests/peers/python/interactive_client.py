"""An MCP client built with the official Python SDK that answers server-to-client requests,
for Sluice's tests.

usage: interactive_client.py URL [--prefix PREFIX] [--prompt TEXT] [--message TEXT]
                             [--mode legacy|auto|2026-07-28] [--timeout SECONDS]

Connects to URL over Streamable HTTP with
- a sampling callback that answers every sampling/createMessage with the text
  "sampled:<the text of the request's last message>",
- an elicitation callback that accepts every elicitation/create with
  {"username": "u", "email": "e@example.com"},
- a progress callback on the progress call,
then calls PREFIXtest_sampling(prompt=TEXT), PREFIXtest_elicitation(message=TEXT) and
PREFIXtest_tool_with_progress (the tools of tests/peers/python/conformance_server.py) one
after the other, and prints one JSON line:

  {"protocol_version", "sampling", "elicitation", "progress"   (the three CallToolResults),
   "progress_values"   (progress of each notification, in arrival order),
   "sampling_requests" / "elicitation_requests"   ([{"id", "text"/"message"}] as the
                                                    callbacks saw them: the ids are the
                                                    ones the client answered)}

--mode defaults to `legacy` (the initialize handshake and a session), the era a gateway
speaking sessions serves; see client.py for the others. Exits 1 with the error on stderr
on any failure.
"""

import argparse
import asyncio
import json
import sys
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

USERNAME = "u"
EMAIL = "e@example.com"


def dump(model: Any) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def last_text(params: types.CreateMessageRequestParams) -> str:
    """The text of the request's last message ("" when it is not text)."""
    if not params.messages:
        return ""
    content = params.messages[-1].content
    blocks = content if isinstance(content, list) else [content]
    return "".join(b.text for b in blocks if isinstance(b, types.TextContent))


async def run(args: argparse.Namespace) -> dict:
    sampling_requests: list[dict] = []
    elicitation_requests: list[dict] = []
    progress_values: list[float] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        text = last_text(params)
        sampling_requests.append({"id": context.request_id, "text": text})
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled:{text}"),
            model="interactive-client",
            stop_reason="endTurn",
        )

    async def elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        elicitation_requests.append({"id": context.request_id, "message": params.message})
        return types.ElicitResult(action="accept", content={"username": USERNAME, "email": EMAIL})

    async def progress(value: float, total: float | None, message: str | None) -> None:
        progress_values.append(value)

    transport = streamable_http_client(args.url)
    async with Client(
        transport,
        mode=args.mode,
        read_timeout_seconds=args.timeout,
        sampling_callback=sampling,
        elicitation_callback=elicitation,
    ) as client:
        p = args.prefix
        sampled = await client.call_tool(f"{p}test_sampling", {"prompt": args.prompt})
        elicited = await client.call_tool(f"{p}test_elicitation", {"message": args.message})
        progressed = await client.call_tool(f"{p}test_tool_with_progress", {}, progress_callback=progress)
        return {
            "protocol_version": client.protocol_version,
            "sampling": dump(sampled),
            "elicitation": dump(elicited),
            "progress": dump(progressed),
            "progress_values": progress_values,
            "sampling_requests": sampling_requests,
            "elicitation_requests": elicitation_requests,
        }


def leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups from the SDK's task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in leaves(sub)]
    return [e]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--prefix", default="", help="prefix of the tool names (e.g. 'conf__' through a gateway)")
    p.add_argument("--prompt", default="hello from python", help="test_sampling's prompt")
    p.add_argument("--message", default="who are you?", help="test_elicitation's message")
    p.add_argument("--mode", default="legacy", help="legacy (default), auto or 2026-07-28")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    try:
        args = p.parse_args()
    except SystemExit as e:  # usage errors exit 1 like every other failure (--help: 0)
        sys.exit(1 if e.code else 0)
    try:
        print(json.dumps(asyncio.run(run(args))), flush=True)
    except BaseException as e:  # noqa: BLE001 - report anything, exit 1
        for leaf in leaves(e):
            print(f"client failed: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
