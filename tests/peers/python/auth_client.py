"""The official Python SDK's OAuth client side against a Sluice gateway, for Sluice's tests.

usage: auth_client.py URL --issuer ISSUER --client-id ID --client-secret SECRET
                      --assertion ID_JAG [--call TOOL --args JSON]

1. Discovery as the SDK does it: an unauthenticated initialize must get 401; the SDK's own
   helpers read `resource_metadata` from WWW-Authenticate, fetch the RFC 9728 document and
   check that its `resource` covers URL.
2. The SDK's `IdentityAssertionOAuthProvider` (SEP-990, RFC 7523 jwt-bearer) then exchanges
   the ID-JAG at ISSUER's token endpoint and connects with the access token it gets, lists
   tools and optionally calls one.

Prints one JSON line: challenge, metadata, resource_allowed, tools, call. Exits 1 with the
error on stderr on any failure.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from client import leaves  # the sibling SDK client's error unwrapping (this folder is on sys.path)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def discover(url: str) -> dict:
    async with httpx2.AsyncClient() as http:
        resp = await http.post(
            url, json=INITIALIZE, headers={"accept": "application/json, text/event-stream"}
        )
        if resp.status_code != 401:
            raise RuntimeError(f"expected 401 without a token, got {resp.status_code}")
        pointer = extract_resource_metadata_from_www_auth(resp)
        for candidate in build_protected_resource_metadata_discovery_urls(pointer, url):
            metadata = await handle_protected_resource_response(await http.get(candidate))
            if metadata is not None:
                resource = str(metadata.resource)
                return {
                    "challenge": resp.headers.get("www-authenticate"),
                    "metadata_url": candidate,
                    "metadata": metadata.model_dump(mode="json", exclude_none=True),
                    "resource_allowed": check_resource_allowed(resource_url_from_server_url(url), resource),
                }
        raise RuntimeError("no protected resource metadata found")


async def run(args: argparse.Namespace) -> dict:
    out = await discover(args.url)
    asked: list[tuple[str, str]] = []

    async def assertion(audience: str, resource: str) -> str:
        asked.append((audience, resource))
        return args.assertion

    auth = IdentityAssertionOAuthProvider(
        server_url=args.url,
        storage=MemoryStorage(),
        client_id=args.client_id,
        client_secret=args.client_secret,
        issuer=args.issuer,
        assertion_provider=assertion,
    )
    async with create_mcp_http_client(auth=auth) as http:
        transport = streamable_http_client(args.url, http_client=http)
        async with Client(transport, mode="legacy", read_timeout_seconds=20) as client:
            page = await client.list_tools()
            out["tools"] = [t.name for t in page.tools]
            out["call"] = None
            if args.call:
                result = await client.call_tool(args.call, json.loads(args.args))
                out["call"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    out["assertion_requested_for"] = asked
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--assertion", required=True)
    p.add_argument("--call")
    p.add_argument("--args", default="{}")
    args = p.parse_args()
    try:
        print(json.dumps(asyncio.run(run(args))))
    except BaseException as e:  # noqa: BLE001 - report every leaf error and fail
        for leaf in leaves(e):
            print(f"{type(leaf).__name__}: {leaf}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
