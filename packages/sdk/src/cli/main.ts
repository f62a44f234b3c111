#!/usr/bin/env node
import { runCli } from './run-cli';

// Ctrl-C cancels the run being executed (it is recorded as cancelled and the store is closed cleanly);
// a second Ctrl-C exits at once.
const interrupt = new AbortController();
process.on('SIGINT', () => {
  if (interrupt.signal.aborted) process.exit(130);
  process.stderr.write('\ninterrupted: cancelling the run (Ctrl-C again to exit at once)\n');
  interrupt.abort();
});

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
  isTTY: Boolean(process.stdout.isTTY && process.stdin.isTTY),
  signal: interrupt.signal,
});
