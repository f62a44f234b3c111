#!/usr/bin/env node
import { runLabCommand } from './command';

process.exitCode = await runLabCommand(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  // `up` runs until Ctrl-C (or a SIGTERM), then stops everything it started.
  untilStopped: () =>
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }),
});
