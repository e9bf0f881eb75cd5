// An MCP client built with the official TypeScript SDK, for Sluice's tests.
//
// usage: node client.mjs URL [--header 'K: V' ...] [--call TOOL [--args JSON]] [--list-prompts]
//                        [--read URI] [--timeout SECONDS]
//
// Connects to URL over Streamable HTTP (initialize handshake), lists every tool (following
// nextCursor), optionally calls one, and prints one JSON line: protocol_version, server_name,
// tools, call (and prompts / read when asked). Exits 1 with the error on stderr on any failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const USAGE =
  "usage: client.mjs URL [--header 'K: V' ...] [--call TOOL [--args JSON]] [--list-prompts] [--read URI] [--timeout SECONDS]";

function parseArgs(argv) {
  const out = { url: null, headers: {}, call: null, args: "{}", listPrompts: false, read: null, timeout: 30 };
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
    } else if (a === "--call") out.call = value();
    else if (a === "--args") out.args = value();
    else if (a === "--list-prompts") out.listPrompts = true;
    else if (a === "--read") out.read = value();
    else if (a === "--timeout") out.timeout = Number(value());
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (!out.url) out.url = a;
    else throw new Error(`unexpected argument ${a}\n${USAGE}`);
  }
  if (!out.url) throw new Error(USAGE);
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const callArgs = JSON.parse(opts.args);
  const request = { timeout: opts.timeout * 1000 };
  const transport = new StreamableHTTPClientTransport(new URL(opts.url), {
    requestInit: { headers: opts.headers },
  });
  const client = new Client({ name: "sluice-test-node-client", version: "1.0.0" });
  await client.connect(transport, request);
  const tools = [];
  let cursor;
  for (let page = 0; ; page++) {
    if (page >= 1000) throw new Error("tools/list never stopped returning a nextCursor");
    const result = await client.listTools(cursor ? { cursor } : undefined, request);
    tools.push(...result.tools.map((t) => t.name));
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  const out = {
    protocol_version: transport.protocolVersion ?? null,
    server_name: client.getServerVersion()?.name ?? null,
    tools,
    call: null,
  };
  if (opts.call) {
    out.call = await client.callTool({ name: opts.call, arguments: callArgs }, undefined, request);
  }
  if (opts.listPrompts) {
    const prompts = [];
    cursor = undefined;
    for (let page = 0; page < 1000; page++) {
      const result = await client.listPrompts(cursor ? { cursor } : undefined, request);
      prompts.push(...result.prompts.map((p) => p.name));
      cursor = result.nextCursor;
      if (!cursor) break;
    }
    out.prompts = prompts;
  }
  if (opts.read) {
    out.read = await client.readResource({ uri: opts.read }, request);
  }
  await transport.terminateSession().catch(() => {});
  await client.close();
  console.log(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`client failed: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
