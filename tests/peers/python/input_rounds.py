"""Multi-round-trip input requests (SEP-2322, protocol 2026-07-28) for conformance_server.py.

A tool or prompt states each round's questions as an `Ask`; `multi_round` turns them into an
InputRequiredResult on 2026-07-28 (the client retries with the answers) or, on the handshake
era, asks them itself as standalone server-to-client requests mid-call, so one handler body
serves both eras.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import is_version_at_least

# The first protocol revision where a tool or prompt asks for client input by answering with an
# InputRequiredResult (and the client retries with inputResponses/requestState) instead of
# sending elicitation/create, sampling/createMessage or roots/list to the client mid-call.
MRTR_VERSION = "2026-07-28"
# Rounds a handshake-era call may take answering its own questions before it gives up.
MAX_ROUNDS = 5
# How long a handshake-era call waits for the client to answer one of its questions.
ANSWER_TIMEOUT_S = 30.0


def modern(ctx: Context) -> bool:
    """Whether this request speaks 2026-07-28 or later (stateless, per-request `_meta`)."""
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, MRTR_VERSION)


def elicit_request(message: str, properties: dict[str, Any], required: list[str]) -> types.ElicitRequest:
    schema = {"type": "object", "properties": properties, "required": required}
    params = types.ElicitRequestFormParams(message=message, requested_schema=schema)  # type: ignore[arg-type]
    return types.ElicitRequest(params=params)


def sampling_request(text: str, max_tokens: int) -> types.CreateMessageRequest:
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))],
            max_tokens=max_tokens,
        )
    )


def roots_request() -> types.ListRootsRequest:
    return types.ListRootsRequest(params=types.RequestParams())


# The client capability each kind of input request needs, as ClientCapabilities JSON.
CAPABILITY_OF: dict[str, str] = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


# What the client answers each kind with (a handshake-era call asks them itself).
RESULT_OF: dict[str, type[types.Result]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}


def declared(ctx: Context, capability: str) -> bool:
    """Whether the client declared `capability` (the handshake's, or this request's `_meta`)."""
    caps = ctx.client_capabilities
    return caps is not None and getattr(caps, capability, None) is not None


def require_capability(ctx: Context, capability: str) -> None:
    """-32021 MissingRequiredClientCapabilityError (HTTP 400 on 2026-07-28) unless declared."""
    if not declared(ctx, capability):
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message=f"The client did not declare the capability {capability!r} this request needs",
            data={"requiredCapabilities": {capability: {}}},
        )


@dataclass
class Ask:
    """One round's questions: input requests by key, plus the plaintext state for the next round
    (the SDK's RequestStateBoundary seals it with AES-256-GCM on the way out and rejects a
    modified echo with -32602 before any handler runs)."""

    requests: dict[str, types.InputRequest]
    state: str | None = None


InputAnswers = dict[str, Any]
Step = Callable[[InputAnswers, str | None], Awaitable["Ask | Any"]]


async def multi_round(ctx: Context, step: Step) -> Any:
    """Drives a tool's or prompt's rounds. `step(answers, state)` returns an Ask or the final result.

    On 2026-07-28 an Ask goes back as an InputRequiredResult, and the retry's inputResponses and
    (verified, unsealed) requestState feed the next `step`. On the handshake era the same
    questions go to the client as standalone requests on the call's stream and the rounds run
    here, at most MAX_ROUNDS of them, each answer awaited at most ANSWER_TIMEOUT_S. Every
    question needs its capability declared (else -32021).
    """
    answers: InputAnswers = dict(ctx.input_responses or {})
    state = ctx.request_state
    for _ in range(MAX_ROUNDS):
        out = await step(answers, state)
        if not isinstance(out, Ask):
            return out
        for request in out.requests.values():
            require_capability(ctx, CAPABILITY_OF[request.method])
        if modern(ctx):
            return types.InputRequiredResult(input_requests=out.requests, request_state=out.state)
        metadata = ServerMessageMetadata(related_request_id=ctx.request_context.request_id)
        answers = {}
        for key, request in out.requests.items():
            result_type = RESULT_OF[request.method]
            answers[key] = await ctx.session.send_request(
                request,  # type: ignore[arg-type]
                result_type,
                request_read_timeout_seconds=ANSWER_TIMEOUT_S,
                metadata=metadata,
            )
        state = out.state
    raise MCPError(code=types.INTERNAL_ERROR, message=f"no answer after {MAX_ROUNDS} rounds")


def accepted(answers: InputAnswers, key: str, field: str) -> Any | None:
    """The `field` of an accepted elicitation answer under `key` (None when absent or not one)."""
    answer = answers.get(key)
    if isinstance(answer, types.ElicitResult) and answer.action == "accept" and answer.content:
        return answer.content.get(field)
    return None


def sampled_text(answers: InputAnswers, key: str) -> str | None:
    answer = answers.get(key)
    if isinstance(answer, types.CreateMessageResult) and isinstance(answer.content, types.TextContent):
        return answer.content.text
    return None


def roots_of(answers: InputAnswers, key: str) -> list[str] | None:
    answer = answers.get(key)
    return [str(root.uri) for root in answer.roots] if isinstance(answer, types.ListRootsResult) else None
