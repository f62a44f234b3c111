import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SDK_DIR = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** A worker child process and its output. */
export interface Worker {
  child: ChildProcess;
  /** Resolves when the worker has opened the store. */
  ready: Promise<void>;
  /** Resolves with the exit code (or signal) and the JSON summary line, if it printed one. */
  exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    summary?: { pid: number; executed: number };
  }>;
}

/** Starts `test/support/worker.ts` in a real Node process. */
export function startWorker(schema: string, mode: 'drain' | 'serve'): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, schema, mode], {
    cwd: SDK_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) markReady();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<Awaited<Worker['exited']>>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      markReady();
      if (code !== 0 && signal === null) reject(new Error(`worker exited ${code}: ${err.slice(-2000)}`));
      const last = out.trim().split('\n').at(-1) ?? '';
      resolve({ code, signal, ...(last.startsWith('{') ? { summary: JSON.parse(last) } : {}) });
    });
  });
  return { child, ready, exited };
}
