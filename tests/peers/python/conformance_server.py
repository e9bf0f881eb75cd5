"""A conformance MCP server built with the official Python SDK (`mcp` from PyPI), for Sluice's tests.

It implements every server scenario of the official MCP conformance suite
(`@modelcontextprotocol/conformance`, `conformance server --url http://127.0.0.1:PORT/mcp`)
and of its pre-release for protocol revision 2026-07-28 (`0.2.0-alpha.12`, npm alias
`conformance-next`: `conformance server --url ... --spec-version 2026-07-28 --suite all`),
so either suite can be run directly against it and then through Sluice, and any difference
is the gateway's doing.

Serves stateful Streamable HTTP at http://127.0.0.1:PORT/mcp: sessions (`mcp-session-id`),
every POST answered as an SSE stream, a standalone GET stream, resumption with
`Last-Event-ID` from an in-memory event store (one per session; event ids are decimal
integers, unique within the process), and a `retry:` of RETRY_MS on priming events.
A request whose MCP-Protocol-Version header is 2026-07-28 is served statelessly by the SDK
(server/discover, the per-request `_meta` envelope, Mcp-Method/Mcp-Name checks,
subscriptions/listen; no session).

What it serves (each as the suite's scenario text asks):
- tools: test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
  test_multiple_content_types, test_tool_with_logging (3 info logs ~50 ms apart),
  test_error_handling (isError), test_tool_with_progress (0/50/100 of 100 ~50 ms apart),
  test_sampling(prompt) (sampling/createMessage), test_elicitation(message),
  test_elicitation_sep1034_defaults, test_elicitation_sep1330_enums (elicitation/create),
  json_schema_2020_12_tool (a hand-written JSON Schema 2020-12 inputSchema, below), and
  test_reconnection (closes its own POST stream mid-call; the answer arrives once the client
  has resumed with GET + Last-Event-ID).
  Server-to-client requests, logs and progress of a call ride that call's POST stream.
- 2026-07-28 multi-round-trip tools (SEP-2322): the first call answers an InputRequiredResult
  (`resultType: "input_required"`, `inputRequests` by key, sometimes a `requestState`); the
  client's retry with `inputResponses` (and the echoed `requestState`) completes it. An answer
  that is missing or of the wrong kind is asked for again.
  test_input_required_result_elicitation ("user_name" → `Hello, <name>!`), _sampling
  ("capital_question"), _list_roots ("client_roots"), _request_state ("confirm" + state; the
  answer says `state-ok`), _multiple_inputs (elicitation, sampling and roots at once + state),
  _multi_round (step1 name, then step2 colour with a new state carrying the name, then the
  answer), _tampered_state (a modified requestState is answered -32602), _capabilities (asks
  only what the request's `_meta` clientCapabilities declare), and the prompt
  test_input_required_result_prompt ("user_context"). requestState is sealed (AES-256-GCM, so
  integrity-protected) by the SDK's RequestStateBoundary, which verifies every echo before a
  handler runs. Each question needs its client capability declared, else -32021. On a
  handshake-era session the same questions go to the client as standalone requests on the
  call's stream and the rounds run inside the call (sibling module input_rounds.py).
- 2026-07-28 diagnostic tools of the server-stateless scenario (SEP-2575):
  test_missing_capability (needs `sampling`: undeclared, JSON-RPC -32021
  MissingRequiredClientCapabilityError with `data.requiredCapabilities = {"sampling": {}}`,
  HTTP 400 by the SDK's code-to-status table; declared, one sampling round),
  test_streaming_elicitation (progress, then an elicitation as an InputRequiredResult, never a
  request on the response stream), test_logging_tool (an info log, which the SDK sends only
  when the request's `_meta` sets io.modelcontextprotocol/logLevel), test_trigger_tool_change /
  test_trigger_prompt_change (add test_dynamic_tool / test_dynamic_prompt, or remove it when
  present, and publish tools / prompts list_changed to `subscriptions/listen` streams; on the
  handshake era also to the session).
- test_param_header(region) (SEP-2243): `region` carries `x-mcp-header: "Region"`, so on
  2026-07-28 the SDK itself checks the Mcp-Param-Region header against the argument before
  dispatch (missing, different or a malformed `=?base64?...?=` value: HTTP 400, -32020).
- json_schema_2020_12_tool serves the scenario's schema verbatim: `$schema`, `$defs` with an
  `$anchor`, `allOf`/`anyOf`, `if`/`then`/`else`, `additionalProperties: false` (set on the
  registered tool, since MCPServer derives a schema from the signature otherwise).
- resources: test://static-text, test://static-binary, test://watched-resource (subscribable;
  subscriptions are tracked per session, nothing ever updates it), template
  test://template/{id}/data.
- prompts: test_simple_prompt, test_prompt_with_arguments(arg1, arg2),
  test_prompt_with_embedded_resource(resourceUri), test_prompt_with_image,
  test_input_required_result_prompt (above).
- completion/complete (prefix matches from small fixed lists), logging/setLevel (per session;
  later log notifications of that session below the level are not sent), ping.
- DNS rebinding protection: Host must be 127.0.0.1:*, localhost:* or [::1]:* and Origin, when
  present, http://127.0.0.1:*, http://localhost:* or http://[::1]:* (else 421 / 403).
  --allowed-host H (repeatable) also accepts Host H (and Origin http://H, https://H); `:*`
  at the end of H means any port, as in the SDK's own patterns.

Priming events: the SDK sends one (an event with an id and empty data, plus `retry:`) at the
start of a POST stream only when the request's MCP-Protocol-Version header is 2025-11-25 or
later, and only then lets a tool close its stream. The suite's SSE-polling requests carry
`mcp-protocol-version: 2025-03-26` on a session that negotiated 2025-11-25, so this server
decides by the version the session negotiated (the header's when newer). --sdk-priming keeps
the SDK's per-request decision (that scenario then warns twice and its call is not cut).

The port is bound only once the app is ready (uvicorn runs the lifespan first), so polling
the TCP port is a sound readiness check. Logs go to stderr; stdout stays empty.
"""

import argparse
import asyncio
import base64
import itertools
import json
import logging
import sys
import warnings
from collections import OrderedDict
from typing import Annotated, Any

import mcp_types as types
import uvicorn
from mcp.server import streamable_http_manager
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore, StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    KNOWN_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    is_version_at_least,
)
from pydantic import Field

# The sibling module (this folder is on sys.path when run as a script).
from input_rounds import (
    Ask,
    InputAnswers,
    accepted,
    declared,
    elicit_request,
    modern,
    multi_round,
    require_capability,
    roots_of,
    roots_request,
    sampled_text,
    sampling_request,
)

# Logging, sampling and the deprecated client capabilities are what this server exists to test.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

# A 1x1 red pixel PNG and a 16-bit mono 8 kHz WAV of 8 silent samples.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC"
WAV_BASE64 = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA"

# The `retry:` (ms) of priming events: how long a client waits before resuming a cut stream.
RETRY_MS = 100
# How long test_reconnection waits for the client to resume before answering anyway.
RESUME_WAIT_S = 5.0
# Events kept per session for replay; older ones are forgotten.
EVENTS_PER_SESSION = 10_000

# The inputSchema of json_schema_2020_12_tool: the json-schema-2020-12 scenario's, verbatim
# (SEP-1613 and SEP-2106 keywords).
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

LOG_LEVELS: list[str] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]

# Where ConformanceTransport leaves itself in the ASGI scope of each request it dispatches.
TRANSPORT_SCOPE_KEY = "sluice.conformance.transport"

logger = logging.getLogger("conformance_server")


class SessionEventStore(EventStore):
    """The events of one session, for replay after `Last-Event-ID`.

    The SDK names a POST stream by its JSON-RPC request id, which repeats across sessions
    (every client's first call is often id 1), so each session gets its own store and a
    Last-Event-ID can only ever replay that session's events. Ids come from one process-wide
    counter, so no two events share an id.
    """

    _ids = itertools.count(1)

    def __init__(self) -> None:
        # Insertion order is event order; appended to while a replay is running.
        self._events: OrderedDict[str, tuple[str, types.JSONRPCMessage | None]] = OrderedDict()

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        event_id = str(next(self._ids))
        self._events[event_id] = (stream_id, message)
        while len(self._events) > EVENTS_PER_SESSION:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        entry = self._events.get(last_event_id)
        if entry is None:
            return None
        stream_id = entry[0]
        cursor = int(last_event_id)
        # Re-scan until nothing newer is left, so an event stored while an earlier one was
        # being sent is not skipped.
        while True:
            pending = [
                (event_id, message)
                for event_id, (sid, message) in list(self._events.items())
                if sid == stream_id and int(event_id) > cursor
            ]
            if not pending:
                return stream_id
            for event_id, message in pending:
                cursor = int(event_id)
                if message is not None:  # priming events carry no message
                    await send_callback(EventMessage(message, event_id))


class ConformanceTransport(StreamableHTTPServerTransport):
    """The SDK's Streamable HTTP transport with three changes (see the module docstring).

    - A session gets its own SessionEventStore (the manager hands every session the same one).
    - Priming events and the close-stream callback follow the version the session negotiated
      unless SDK_PRIMING (the SDK decides by each request's MCP-Protocol-Version header).
    - It leaves itself in the scope of each request it dispatches, so test_reconnection can
      see when the client has resumed its stream.
    """

    SDK_PRIMING = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._event_store is not None:
            self._event_store = SessionEventStore()
        self._session_version: str | None = None

    def _effective_version(self, protocol_version: str) -> str:
        """The newer of the request's version and the session's (just the request's when
        SDK_PRIMING, before the handshake, or when the request names an unknown version)."""
        session = self._session_version
        if self.SDK_PRIMING or session is None or protocol_version not in KNOWN_PROTOCOL_VERSIONS:
            return protocol_version
        return session if is_version_at_least(session, protocol_version) else protocol_version

    async def _mint_priming_event(self, stream_id: str, protocol_version: str) -> dict[str, Any] | None:
        return await super()._mint_priming_event(stream_id, self._effective_version(protocol_version))

    def _create_session_message(  # type: ignore[no-untyped-def]
        self, message, request, request_id, protocol_version
    ):
        if message.method == "initialize":
            requested = str((message.params or {}).get("protocolVersion", ""))
            # The SDK's negotiation: the client's version if it speaks it, else the latest.
            self._session_version = (
                requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
            )
        request.scope[TRANSPORT_SCOPE_KEY] = self
        return super()._create_session_message(
            message, request, request_id, self._effective_version(protocol_version)
        )

    def streams_to_client(self, stream_id: str) -> bool:
        """Whether messages of `stream_id` currently have a live SSE connection to go out on."""
        return stream_id in self._request_streams


# The session manager builds transports by this module-level name.
streamable_http_manager.StreamableHTTPServerTransport = ConformanceTransport  # type: ignore[misc]


def session_key(request: Any) -> str | None:
    """The mcp-session-id of an HTTP request (per-session state lives under it)."""
    return request.headers.get("mcp-session-id") if request is not None else None


def text_result(text: str, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)




def build() -> MCPServer:
    server = MCPServer(name="sluice-conformance", version="1.0.0", log_level="WARNING")
    log_levels: dict[str, str] = {}  # session id -> minimum level set by logging/setLevel
    subscriptions: dict[str, set[str]] = {}  # session id -> subscribed resource URIs

    async def log(ctx: Context, level: str, text: str) -> None:
        """A notifications/message on the call's own stream, unless below the session's level."""
        floor = log_levels.get(session_key(ctx.request_context.request) or "")
        if floor is not None and LOG_LEVELS.index(level) < LOG_LEVELS.index(floor):
            return
        await ctx.session.send_log_message(
            level, text, logger="conformance", related_request_id=ctx.request_id
        )

    # ---- tools ----

    @server.tool()
    def test_simple_text() -> types.CallToolResult:
        """Returns one text block."""
        return text_result("This is a simple text response for testing.")

    @server.tool()
    def test_image_content() -> types.CallToolResult:
        """Returns one image block (a 1x1 red PNG)."""
        return types.CallToolResult(
            content=[types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")]
        )

    @server.tool()
    def test_audio_content() -> types.CallToolResult:
        """Returns one audio block (a tiny WAV)."""
        return types.CallToolResult(
            content=[types.AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")]
        )

    @server.tool()
    def test_embedded_resource() -> types.CallToolResult:
        """Returns one embedded text resource."""
        return types.CallToolResult(
            content=[
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="test://embedded-resource",
                        mime_type="text/plain",
                        text="This is an embedded resource content.",
                    ),
                )
            ]
        )

    @server.tool()
    def test_multiple_content_types() -> types.CallToolResult:
        """Returns a text, an image and an embedded resource block."""
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text="Multiple content types test:"),
                types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png"),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="test://mixed-content-resource",
                        mime_type="application/json",
                        text=json.dumps({"test": "data", "value": 123}, separators=(",", ":")),
                    ),
                ),
            ]
        )

    @server.tool()
    async def test_tool_with_logging(ctx: Context) -> types.CallToolResult:
        """Sends three info log notifications about 50 ms apart, then answers."""
        await log(ctx, "info", "Tool execution started")
        await asyncio.sleep(0.05)
        await log(ctx, "info", "Tool processing data")
        await asyncio.sleep(0.05)
        await log(ctx, "info", "Tool execution completed")
        return text_result("Tool with logging executed successfully")

    @server.tool()
    def test_error_handling() -> types.CallToolResult:
        """Always fails: a tool error result (isError), not a protocol error."""
        return text_result("This tool intentionally returns an error for testing", is_error=True)

    @server.tool()
    async def test_tool_with_progress(ctx: Context) -> types.CallToolResult:
        """Reports progress 0, 50 and 100 of 100 about 50 ms apart (when the call has a progress
        token), then answers."""
        await ctx.report_progress(0, 100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(50, 100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(100, 100)
        return text_result("Tool with progress executed successfully")

    @server.tool()
    async def test_sampling(
        prompt: Annotated[str, Field(description="The prompt to send to the LLM")], ctx: Context
    ) -> types.CallToolResult:
        """Asks the client for an LLM completion of `prompt` (sampling/createMessage)."""
        caps = ctx.session.client_capabilities
        if caps is None or caps.sampling is None:
            return text_result("The client does not support sampling", is_error=True)
        try:
            result = await ctx.session.create_message(
                messages=[
                    types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
                ],
                max_tokens=100,
                related_request_id=ctx.request_id,
            )
        except Exception as e:  # noqa: BLE001 - the client's failure becomes the tool's
            return text_result(f"Sampling failed: {e}", is_error=True)
        content = result.content
        answer = content.text if isinstance(content, types.TextContent) else json.dumps(
            content.model_dump(by_alias=True, mode="json", exclude_none=True)
        )
        return text_result(f"LLM response: {answer}")

    async def elicit(
        ctx: Context, message: str, schema: dict[str, Any], prefix: str
    ) -> types.CallToolResult:
        caps = ctx.session.client_capabilities
        if caps is None or caps.elicitation is None:
            return text_result("The client does not support elicitation", is_error=True)
        try:
            result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        except Exception as e:  # noqa: BLE001
            return text_result(f"Elicitation failed: {e}", is_error=True)
        content = json.dumps(result.content or {}, separators=(",", ":"))
        return text_result(f"{prefix}: action={result.action}, content={content}")

    @server.tool()
    async def test_elicitation(
        message: Annotated[str, Field(description="The message to show the user")], ctx: Context
    ) -> types.CallToolResult:
        """Asks the client for a username and an email (elicitation/create)."""
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        return await elicit(ctx, message, schema, "User response")

    @server.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> types.CallToolResult:
        """Elicitation whose schema gives a default for every primitive type (SEP-1034)."""
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": True},
            },
        }
        return await elicit(ctx, "Please review your information", schema, "Elicitation completed")

    @server.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> types.CallToolResult:
        """Elicitation whose schema has all five enum forms of SEP-1330."""
        options = ["option1", "option2", "option3"]
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Untitled single-select",
                    "enum": options,
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Titled single-select",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Legacy titled enum (deprecated enumNames)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Untitled multi-select",
                    "items": {"type": "string", "enum": options},
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Titled multi-select",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
        }
        return await elicit(ctx, "Please pick some options", schema, "Elicitation completed")

    @server.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
    def json_schema_2020_12_tool(
        name: str | None = None,
        address: dict[str, Any] | None = None,
        contactMethod: str | None = None,  # noqa: N803
        phone: str | None = None,
        email: str | None = None,
    ) -> str:
        return f"name={name!r}, address={json.dumps(address)}, contactMethod={contactMethod!r}"

    # MCPServer derives inputSchema from the signature; this tool's schema is the scenario's own,
    # which tools/list serves as is ($schema, $defs with $anchor, allOf/anyOf, if/then/else).
    server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = JSON_SCHEMA_2020_12

    @server.tool()
    async def test_reconnection(ctx: Context) -> types.CallToolResult:
        """Closes its own SSE stream mid-call (SEP-1699 polling); the answer goes out once the
        client has resumed with GET + Last-Event-ID (or after a few seconds, to the event store)."""
        await log(ctx, "info", "Before disconnect")
        # Let the log reach the wire: its event id is a resume point even without priming.
        await asyncio.sleep(0.05)
        request = ctx.request_context.request
        transport = request.scope.get(TRANSPORT_SCOPE_KEY) if request is not None else None
        # The SDK offers the callback only where a client can resume (2025-11-25 or later,
        # an event store; never on the 2026-07-28 per-request path).
        if ctx.request_context.close_sse_stream is None or not isinstance(transport, ConformanceTransport):
            return text_result("Reconnection test completed (stream not cut: this request cannot resume)")
        await ctx.close_sse_stream()
        stream_id = ctx.request_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESUME_WAIT_S
        while not transport.streams_to_client(stream_id) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await log(ctx, "info", "After reconnect")
        return text_result("Reconnection test completed")


    # ---- 2026-07-28: multi-round-trip requests (SEP-2322) ----
    # Each answers a first call with an InputRequiredResult; the client's retry carries the
    # answers (inputResponses) and the echoed requestState. On the handshake era the same
    # questions go out as standalone requests mid-call (see multi_round).

    user_name_question = elicit_request("What is your name?", {"name": {"type": "string"}}, ["name"])

    @server.tool()
    async def test_input_required_result_elicitation(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks for a name (elicitation "user_name"), then answers `Hello, <name>!`."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            name = accepted(answers, "user_name", "name")
            if not isinstance(name, str):
                return Ask({"user_name": user_name_question})
            return text_result(f"Hello, {name}!")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_sampling(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks for an LLM completion ("capital_question"), then answers with its text."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            text = sampled_text(answers, "capital_question")
            if text is None:
                return Ask({"capital_question": sampling_request("What is the capital of France?", 100)})
            return text_result(f"LLM response: {text}")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_list_roots(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks for the client's roots ("client_roots"), then lists them."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            roots = roots_of(answers, "client_roots")
            if roots is None:
                return Ask({"client_roots": roots_request()})
            return text_result(f"Client roots: {', '.join(roots) or '(none)'}")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_request_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks for a confirmation ("confirm") with a requestState; the retry must echo it
        (answer contains `state-ok`)."""
        expected_state = json.dumps({"tool": "test_input_required_result_request_state"})

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            ok = accepted(answers, "confirm", "ok")
            if ok is None or state != expected_state:
                question = elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
                return Ask({"confirm": question}, expected_state)
            return text_result(f"state-ok: confirmed={ok}")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks an elicitation ("user_name"), a sampling ("greeting") and roots ("client_roots")
        at once, with a requestState; answers once all three are in."""
        expected_state = json.dumps({"tool": "test_input_required_result_multiple_inputs"})

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            name = accepted(answers, "user_name", "name")
            greeting = sampled_text(answers, "greeting")
            roots = roots_of(answers, "client_roots")
            if not isinstance(name, str) or greeting is None or roots is None or state != expected_state:
                return Ask(
                    {
                        "user_name": user_name_question,
                        "greeting": sampling_request("Generate a greeting", 50),
                        "client_roots": roots_request(),
                    },
                    expected_state,
                )
            return text_result(f"name={name}, greeting={greeting}, roots={', '.join(roots)}")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_multi_round(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Round 1 asks "step1" (name), round 2 "step2" (favourite colour) with a new
        requestState carrying the name, round 3 answers."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            progress = json.loads(state) if state else {}
            if progress.get("round") == 2:
                color = accepted(answers, "step2", "color")
                if isinstance(color, str):
                    return text_result(f"{progress.get('name')}'s favorite color is {color}")
                return Ask({"step2": color_question}, state)
            name = accepted(answers, "step1", "name")
            if isinstance(name, str):
                return Ask({"step2": color_question}, json.dumps({"round": 2, "name": name}))
            return Ask({"step1": name_question}, json.dumps({"round": 1}))

        name_question = elicit_request("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
        color_question = elicit_request(
            "Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"]
        )
        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_tampered_state(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Like test_input_required_result_request_state; a modified requestState is answered
        -32602 by the SDK's RequestStateBoundary (AES-256-GCM, so integrity-checked) before this
        tool runs."""
        expected_state = json.dumps({"tool": "test_input_required_result_tampered_state"})

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            ok = accepted(answers, "confirm", "ok")
            if ok is None or state != expected_state:
                question = elicit_request("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])
                return Ask({"confirm": question}, expected_state)
            return text_result("state-ok")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_input_required_result_capabilities(
        ctx: Context,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Asks only what the client declared: an elicitation if `elicitation`, a sampling if
        `sampling`, roots if `roots` (none declared: answers at once)."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            wanted: dict[str, types.InputRequest] = {}
            if declared(ctx, "elicitation") and accepted(answers, "user_name", "name") is None:
                wanted["user_name"] = user_name_question
            if declared(ctx, "sampling") and sampled_text(answers, "capital_question") is None:
                wanted["capital_question"] = sampling_request("What is the capital of France?", 100)
            if declared(ctx, "roots") and roots_of(answers, "client_roots") is None:
                wanted["client_roots"] = roots_request()
            if wanted:
                return Ask(wanted)
            asked = sorted(key for key in ("user_name", "capital_question", "client_roots") if key in answers)
            return text_result(f"Capabilities respected; answered: {', '.join(asked) or '(nothing asked)'}")

        return await multi_round(ctx, step)

    # ---- 2026-07-28: diagnostic tools of the server-stateless scenario (SEP-2575) ----

    @server.tool()
    async def test_missing_capability(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        """Needs `sampling`: undeclared, -32021 MissingRequiredClientCapabilityError (HTTP 400 on
        2026-07-28) with requiredCapabilities {"sampling": {}}; declared, asks one sampling."""
        require_capability(ctx, "sampling")

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            text = sampled_text(answers, "sample")
            if text is None:
                return Ask({"sample": sampling_request("Say something", 20)})
            return text_result(f"LLM response: {text}")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_streaming_elicitation(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
        """Reports progress (when the call has a progress token), then asks an elicitation: on
        2026-07-28 as an InputRequiredResult, never as a request on the response stream."""
        await ctx.report_progress(0, 1)

        async def step(answers: InputAnswers, state: str | None) -> Ask | types.CallToolResult:
            name = accepted(answers, "user_name", "name")
            if not isinstance(name, str):
                return Ask({"user_name": user_name_question})
            return text_result(f"Hello, {name}!")

        return await multi_round(ctx, step)

    @server.tool()
    async def test_logging_tool(ctx: Context) -> types.CallToolResult:
        """Logs at info, then answers. The SDK drops the log on 2026-07-28 unless the request's
        `_meta` carries io.modelcontextprotocol/logLevel (and logging/setLevel applies before)."""
        await log(ctx, "info", "test_logging_tool ran")
        return text_result("Logging tool executed")

    dynamic = {"tool": False, "prompt": False}

    def dynamic_tool() -> str:
        """Present only between odd and even calls of test_trigger_tool_change."""
        return "dynamic tool"

    def dynamic_prompt() -> list[UserMessage]:
        """Present only between odd and even calls of test_trigger_prompt_change."""
        return [UserMessage("dynamic prompt")]

    @server.tool()
    async def test_trigger_tool_change(ctx: Context) -> types.CallToolResult:
        """Adds tool test_dynamic_tool, or removes it if present, and announces the change:
        notifications/tools/list_changed to subscriptions/listen streams (2026-07-28) and to the
        session (handshake era)."""
        if dynamic["tool"]:
            server.remove_tool("test_dynamic_tool")
        else:
            server.add_tool(dynamic_tool, name="test_dynamic_tool")
        dynamic["tool"] = not dynamic["tool"]
        await ctx.notify_tools_changed()
        if not modern(ctx):
            await ctx.session.send_tool_list_changed()
        return text_result(f"test_dynamic_tool {'added' if dynamic['tool'] else 'removed'}")

    @server.tool()
    async def test_trigger_prompt_change(ctx: Context) -> types.CallToolResult:
        """Adds prompt test_dynamic_prompt, or removes it if present, and announces the change
        (notifications/prompts/list_changed, as test_trigger_tool_change)."""
        if dynamic["prompt"]:
            server.remove_prompt("test_dynamic_prompt")
        else:
            server.add_prompt(Prompt.from_function(dynamic_prompt, name="test_dynamic_prompt"))
        dynamic["prompt"] = not dynamic["prompt"]
        await ctx.notify_prompts_changed()
        if not modern(ctx):
            await ctx.session.send_prompt_list_changed()
        return text_result(f"test_dynamic_prompt {'added' if dynamic['prompt'] else 'removed'}")

    # ---- 2026-07-28: a custom Mcp-Param header (SEP-2243) ----

    REGION_HEADER: dict[str, Any] = {"x-mcp-header": "Region"}  # noqa: N806

    @server.tool()
    def test_param_header(
        region: Annotated[
            str, Field(description="Also sent as header Mcp-Param-Region", json_schema_extra=REGION_HEADER)
        ],
    ) -> types.CallToolResult:
        """Echoes `region`. Its inputSchema marks `region` with x-mcp-header "Region", so on
        2026-07-28 the SDK checks the Mcp-Param-Region header against it before dispatch (absent
        while the argument is present, mismatched, or a malformed =?base64?...?= value: HTTP 400,
        -32020 HeaderMismatch)."""
        return text_result(f"region={region}")

    # ---- resources ----

    @server.resource("test://static-text", mime_type="text/plain", description="A static text resource")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary", mime_type="image/png", description="A static binary resource (PNG)"
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG_BASE64)

    @server.resource(
        "test://template/{id}/data",
        mime_type="application/json",
        description="A templated resource: the id is substituted into the data",
    )
    def template_data(id: str) -> str:
        data = {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
        return json.dumps(data, separators=(",", ":"))

    @server.resource(
        "test://watched-resource", mime_type="text/plain", description="A resource clients can subscribe to"
    )
    def watched_resource() -> str:
        return "Watched resource content"

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscriptions.setdefault(session_key(ctx.request) or "", set()).add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscriptions.get(session_key(ctx.request) or "", set()).discard(str(params.uri))
        return types.EmptyResult()

    # ---- prompts ----

    @server.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A simple prompt without arguments."""
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt()
    def test_prompt_with_arguments(
        arg1: Annotated[str, Field(description="First test argument")],
        arg2: Annotated[str, Field(description="Second test argument")],
    ) -> list[UserMessage]:
        """A prompt with two required arguments."""
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt()
    def test_prompt_with_embedded_resource(
        resourceUri: Annotated[str, Field(description="URI of the resource to embed")],  # noqa: N803
    ) -> list[UserMessage]:
        """A prompt that embeds a resource."""
        return [
            UserMessage(
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                    ),
                )
            ),
            UserMessage("Please process the embedded resource above."),
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt with an image."""
        return [
            UserMessage(types.ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]

    @server.prompt()
    async def test_input_required_result_prompt(
        ctx: Context,
    ) -> list[UserMessage] | types.InputRequiredResult:
        """Asks what context to use (elicitation "user_context"), then renders a prompt with it."""

        async def step(answers: InputAnswers, state: str | None) -> Ask | list[UserMessage]:
            context = accepted(answers, "user_context", "context")
            if not isinstance(context, str):
                question = elicit_request(
                    "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                )
                return Ask({"user_context": question})
            return [UserMessage(f"Prompt with context: {context}")]

        return await multi_round(ctx, step)

    # ---- completion, logging ----

    candidates = {
        "arg1": ["paris", "park", "party", "test-value-1"],
        "arg2": ["world", "word", "work", "test-value-2"],
        "resourceUri": ["test://static-text", "test://static-binary", "test://watched-resource"],
        "id": ["1", "123", "42"],
    }

    @server.completion()
    async def complete(
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.Completion:
        values = [v for v in candidates.get(argument.name, []) if v.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), has_more=False)

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        log_levels[session_key(ctx.request) or ""] = params.level
        return types.EmptyResult()

    # MCPServer has no public hook for these; the low-level server advertises what it handles
    # (logging, resources.subscribe).
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    return server


def security(extra_hosts: list[str]) -> TransportSecuritySettings:
    """The SDK's localhost defaults plus each --allowed-host (and its http/https origins)."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    for host in extra_hosts:
        hosts.append(host)
        origins += [f"http://{host}", f"https://{host}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="H",
        help="also accept Host H, e.g. gateway.test:8443 or gateway.test:* (repeatable)",
    )
    p.add_argument(
        "--sdk-priming",
        action="store_true",
        help="decide priming events by each request's MCP-Protocol-Version header, as the SDK does",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    ConformanceTransport.SDK_PRIMING = args.sdk_priming
    server = build()
    app = server.streamable_http_app(
        event_store=SessionEventStore(),  # enables resumability; each session swaps in its own
        retry_interval=RETRY_MS,
        transport_security=security(args.allowed_host),
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        # SIGTERM: stop accepting, give open requests and SSE streams this long, then exit.
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
