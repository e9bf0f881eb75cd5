// An MCP client built with the official TypeScript SDK, for Sluice's tests.
//
// Connects to URL over Streamable HTTP, lists every tool (following pagination), optionally
// calls one, and prints one JSON line: protocol_version, server_name, tools, call.
// Exits 1 with the error on stderr on any failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

function parseArgs(argv) {
  const out = { url: null, call: null, args: "{}" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--call") out.call = argv[++i];
    else if (a === "--args") out.args = argv[++i];
    else if (!out.url) out.url = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!out.url) throw new Error("usage: client.mjs URL [--call TOOL] [--args JSON]");
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const transport = new StreamableHTTPClientTransport(new URL(opts.url));
  const client = new Client({ name: "sluice-test-node-client", version: "1.0.0" });
  await client.connect(transport);
  const tools = [];
  let cursor;
  for (let page = 0; page < 1000; page++) {
    const result = await client.listTools(cursor ? { cursor } : undefined);
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
    out.call = await client.callTool({ name: opts.call, arguments: JSON.parse(opts.args) });
  }
  await transport.terminateSession().catch(() => {});
  await client.close();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(`client failed: ${e?.stack ?? e}`);
  process.exit(1);
});
