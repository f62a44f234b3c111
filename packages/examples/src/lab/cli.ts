#!/usr/bin/env node
import { runLabCommand } from './command';

process.exitCode = await runLabCommand(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
