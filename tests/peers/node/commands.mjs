// The line protocol of the test peers driven over stdin/stdout (idp.mjs, authz.mjs): one JSON
// command per stdin line, one JSON answer per stdout line ({"error": ...} when the command
// failed), in order, each command run after `ready` and the commands before it. The process
// exits once stdin closes and the queued commands are answered.
import readline from 'node:readline';

export function serveCommands(handle, ready = Promise.resolve()) {
  let queue = ready;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(async () => {
      let out;
      try {
        out = await handle(JSON.parse(line));
      } catch (e) {
        out = { error: String(e?.error_description ?? e?.message ?? e) };
      }
      process.stdout.write(`${JSON.stringify(out)}\n`);
    });
  });
  rl.on('close', () => queue.then(() => process.exit(0)));
}
