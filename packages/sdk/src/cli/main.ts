#!/usr/bin/env node
import { runCli } from './run-cli';

// Ctrl-C stops the command: a run being executed is cancelled (recorded as cancelled, the store closed
// cleanly); `serve` shuts down gracefully (requests and the run in progress finish). SIGTERM (timeout,
// systemd, kill, Kubernetes) is treated like the first Ctrl-C. A later signal goes to the command when it
// listens for it itself (`serve`: hand the run over at once); otherwise a second Ctrl-C exits at once and a
// second SIGTERM is ignored.
const interrupt = new AbortController();
function onSignal(signal: NodeJS.Signals): void {
  const commandListens = () => process.listenerCount(signal) > 1;
  if (interrupt.signal.aborted) {
    if (!commandListens() && signal === 'SIGINT') process.exit(130);
    return;
  }
  // Aborting first lets the command start listening for the next signal, so the hint below is right.
  interrupt.abort();
  if (signal === 'SIGTERM') process.stderr.write('\nterminated: stopping\n');
  else {
    const hint = commandListens() ? '' : ' (Ctrl-C again to exit at once)';
    process.stderr.write(`\ninterrupted: stopping${hint}\n`);
  }
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
  // An operator is present when they can answer (stdin) and see prompts (stderr); stdout may be piped,
  // e.g. `runbook run … --json > out.json`.
  isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
  signal: interrupt.signal,
});
