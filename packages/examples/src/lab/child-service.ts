/**
 * A program the lab runs beside itself (Prometheus, Alertmanager, the runbook service): started as a
 * child process, ready when its readiness URL answers 200, stopped with SIGTERM (SIGKILL after a grace).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

export interface ChildServiceOptions {
  /** For messages: `prometheus`. */
  name: string;
  command: string;
  args: string[];
  /** Answers 200 once the program serves. */
  readyUrl: string;
  /**
   * Whether a 200 from `readyUrl` comes from this program. A port picked free a moment ago can meanwhile be
   * taken by another process (whose own readiness path may answer too: a Kubernetes API server has `/readyz`).
   * @default any 200
   */
  isOurs?: (response: Response) => Promise<boolean>;
  /** Where its stdout and stderr go. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  /** @default 30000 */
  readyTimeoutMs?: number;
}

export interface ChildService {
  name: string;
  pid: number | undefined;
  /** SIGTERM, then SIGKILL after 5 s; resolves when it has exited. */
  stop(): Promise<void>;
}

/** The program could not listen: its port was taken (by another process's port 0) after it was picked. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
}

/** Whether the program's log says its address was taken (Node's EADDRINUSE, Go's "address already in use"). */
async function failedToListen(logFile: string): Promise<boolean> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return /EADDRINUSE|address already in use/i.test(text.slice(-8_192));
}

export async function startChildService(options: ChildServiceOptions): Promise<ChildService> {
  const log = createWriteStream(options.logFile, { flags: 'a', mode: 0o600 });
  await once(log, 'open');
  const child: ChildProcess = spawn(options.command, options.args, {
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once('error', () => resolve());
  });
  // The lab's children must not outlive it, whatever ends the lab.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (!exited && child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    }
    log.end();
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exited || child.exitCode !== null) {
      await stop();
      const message = `${options.name} exited (${exited?.code ?? exited?.signal ?? 'failed to start'}) before it was ready; see ${options.logFile}`;
      throw (await failedToListen(options.logFile)) ? new PortInUseError(message) : new Error(message);
    }
    try {
      const response = await fetch(options.readyUrl, { signal: AbortSignal.timeout(1_000) });
      if (response.ok && (await (options.isOurs?.(response) ?? true))) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `${options.name} was not ready within ${options.readyTimeoutMs ?? 30_000} ms; see ${options.logFile}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { name: options.name, pid: child.pid, stop };
}
