// An MCP client built with the official TypeScript SDK v2 (`@modelcontextprotocol/client`),
// the release line that speaks the 2026-07-28 revision, for Sluice's tests.
//
// usage: node modern_client.mjs URL [--mode 2026-07-28|auto|legacy] [--header 'K: V' ...]
//                               [--call TOOL [--args JSON]] [--watch URI --touch TOOL]
//                               [--timeout SECONDS]
//
// --mode is the SDK's `versionNegotiation.mode`: `2026-07-28` (the default here) pins the
// revision (`{pin: "2026-07-28"}`: `server/discover` first, no initialize, no session, the
// per-request `_meta` envelope and the Mcp-Method / Mcp-Name headers on every request, and
// anything else fails loudly); `auto` probes `server/discover` and falls back to the
// initialize handshake; `legacy` (the SDK's own default) always does the handshake.
//
// Connects to URL over Streamable HTTP, lists every tool, optionally calls one, and prints one
// JSON line: protocol_version, era, server_name, tools, call, call_result_type (and listen with
// --watch). The SDK consumes the revision's `resultType` and strips it from what callTool
// returns (its typings: "stripped before results reach consumers"), so call_result_type is the
// value the call's response carried on the wire, read by a tap on the transport. With
// --watch (2026-07-28 only) it opens `subscriptions/listen` for the URI, calls --touch with
// {"uri": URI}, and waits for the `notifications/resources/updated`: `listen` holds the
// honoured URIs and the updated URI. Exits 1 with the error on stderr on any failure.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const USAGE =
  "usage: modern_client.mjs URL [--mode 2026-07-28|auto|legacy] [--header 'K: V' ...] [--call TOOL [--args JSON]] [--watch URI --touch TOOL] [--timeout SECONDS]";

function parseArgs(argv) {
  const out = {
    url: null,
    mode: "2026-07-28",
    headers: {},
    call: null,
    args: "{}",
    watch: null,
    touch: null,
    timeout: 30,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (a === "--header") {
      const h = value();
      const colon = h.indexOf(":");
      if (colon <= 0) throw new Error(`expected 'Name: value', got ${JSON.stringify(h)}`);
      out.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (a === "--mode") out.mode = value();
    else if (a === "--call") out.call = value();
    else if (a === "--args") out.args = value();
    else if (a === "--watch") out.watch = value();
    else if (a === "--touch") out.touch = value();
    else if (a === "--timeout") out.timeout = Number(value());
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (!out.url) out.url = a;
    else throw new Error(`unexpected argument ${a}\n${USAGE}`);
  }
  if (!out.url) throw new Error(USAGE);
  if (!(out.timeout > 0)) throw new Error(`--timeout must be a positive number\n${USAGE}`);
  if (Boolean(out.watch) !== Boolean(out.touch)) throw new Error(`--watch and --touch go together\n${USAGE}`);
  return out;
}

function negotiation(mode) {
  if (mode === "auto" || mode === "legacy") return { mode };
  if (/^\d{4}-\d{2}-\d{2}$/.test(mode)) return { mode: { pin: mode } };
  throw new Error(`--mode must be auto, legacy or a revision such as 2026-07-28, got ${JSON.stringify(mode)}`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const callArgs = JSON.parse(opts.args);
  if (callArgs === null || typeof callArgs !== "object" || Array.isArray(callArgs)) {
    throw new Error(`--args must be a JSON object, got ${opts.args}`);
  }
  const request = { timeout: opts.timeout * 1000 };
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
    requestInit: { headers: opts.headers },
  });
  const client = new Client(
    { name: "sluice-test-node-modern-client", version: "1.0.0" },
    { versionNegotiation: negotiation(opts.mode) },
  );
  await client.connect(transport, request);
  // The tap: every JSON-RPC result the transport hands the client, before the SDK strips it.
  let lastResult;
  const deliver = transport.onmessage;
  transport.onmessage = (message, ...rest) => {
    if (message && typeof message === "object" && "result" in message) lastResult = message.result;
    return deliver(message, ...rest);
  };
  // Every page, walked by the SDK (it throws rather than return a partial list).
  const { tools } = await client.listTools(undefined, { ...request, cacheMode: "bypass" });
  const out = {
    protocol_version: client.getNegotiatedProtocolVersion() ?? null,
    era: client.getProtocolEra() ?? null,
    server_name: client.getServerVersion()?.name ?? null,
    tools: tools.map((t) => t.name),
    call: null,
    call_result_type: null,
  };
  if (opts.call) {
    lastResult = undefined;
    out.call = await client.callTool({ name: opts.call, arguments: callArgs }, request);
    out.call_result_type = lastResult?.resultType ?? null;
  }
  if (opts.watch) {
    let heard;
    const updated = new Promise((resolve) => {
      heard = resolve;
    });
    client.setNotificationHandler("notifications/resources/updated", (n) => heard(n.params.uri));
    const sub = await client.listen({ resourceSubscriptions: [opts.watch] }, request);
    await client.callTool({ name: opts.touch, arguments: { uri: opts.watch } }, request);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no notifications/resources/updated for ${opts.watch} within ${opts.timeout}s`)),
        opts.timeout * 1000,
      );
    });
    const uri = await Promise.race([updated, timeout]).finally(() => clearTimeout(timer));
    out.listen = { honored: sub.honoredFilter.resourceSubscriptions ?? [], updated: uri };
    await sub.close();
  }
  await client.close();
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`modern client failed: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
