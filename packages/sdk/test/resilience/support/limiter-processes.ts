import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SDK_DIR = fileURLToPath(new URL('../../..', import.meta.url));

/** A child Node process running one of the `limiter-*.ts` scripts, and the JSON lines it prints. */
export interface LimiterChild {
  child: ChildProcess;
  /** Every JSON line printed so far. */
  readonly lines: unknown[];
  /** Resolves with the first printed line for which `match` is true. */
  line<T>(match: (line: T) => boolean): Promise<T>;
  /** Writes one JSON line to the child's stdin (see {@link readLine}). */
  send(message: unknown): void;
  /** Resolves when the process exits (rejects on a non-zero exit code, with its stderr). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `script` (a file next to this one) in a real Node process: `node --import tsx <script> <json>`. */
export function startChild(script: string, input: unknown): LimiterChild {
  const file = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file, JSON.stringify(input)], {
    cwd: SDK_DIR,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: unknown[] = [];
  const waiters = new Set<{ match: (line: unknown) => boolean; resolve: (line: unknown) => void }>();
  let buffer = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      if (!text.startsWith('{')) continue;
      const line = JSON.parse(text) as unknown;
      lines.push(line);
      for (const waiter of waiters) {
        if (waiter.match(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null)
        reject(new Error(`${script} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ code, signal });
    });
  });
  // A waiter must not hang forever when the child dies first: the exit rejects it.
  exited.catch(() => {});
  return {
    child,
    lines,
    exited,
    send(message) {
      child.stdin?.write(`${JSON.stringify(message)}\n`);
    },
    line<T>(match: (line: T) => boolean): Promise<T> {
      const seen = lines.find((l) => match(l as T));
      if (seen !== undefined) return Promise.resolve(seen as T);
      return new Promise<T>((resolve, reject) => {
        waiters.add({ match: (l) => match(l as T), resolve: (l) => resolve(l as T) });
        exited.then(() => reject(new Error(`${script} exited before printing the expected line`)), reject);
      });
    },
  };
}

/** In a child: the next JSON line the parent sends with {@link LimiterChild.send}. */
export function readLine<T>(): Promise<T> {
  return new Promise((resolve) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      process.stdin.off('data', onData);
      process.stdin.destroy();
      resolve(JSON.parse(buffer.slice(0, newline)) as T);
    };
    process.stdin.on('data', onData);
  });
}
