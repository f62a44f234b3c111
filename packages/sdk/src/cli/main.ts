#!/usr/bin/env node
import { runCli } from './run-cli';

// Ctrl-C stops the command: a run being executed is cancelled (recorded as cancelled, the store closed
// cleanly); `serve` shuts down gracefully (requests and the run in progress finish). A second Ctrl-C exits at
// once. SIGTERM (timeout, systemd, kill, Kubernetes) is treated like the first Ctrl-C.
const interrupt = new AbortController();
process.on('SIGINT', () => {
  if (interrupt.signal.aborted) process.exit(130);
  process.stderr.write('\ninterrupted: stopping (Ctrl-C again to exit at once)\n');
  interrupt.abort();
});
process.on('SIGTERM', () => {
  if (interrupt.signal.aborted) return;
  process.stderr.write('\nterminated: stopping\n');
  interrupt.abort();
});

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
