import { posix } from 'node:path';

/** A file in a simulated container. */
export interface ContainerFile {
  /** Absolute path. */
  path: string;
  /** Last modification. */
  mtime: Date;
  size: number;
}

/** The files of one pod's container, as tests and the lab seed them and `kubectl exec` sees them. */
export interface PodFiles {
  /** Creates or replaces a file. @default mtime now, size 0 */
  write(path: string, file?: { mtime?: Date; size?: number }): void;
  /** Removes a file; true when it existed. */
  remove(path: string): boolean;
  has(path: string): boolean;
  /** Every file, sorted by path. */
  list(): ContainerFile[];
}

/**
 * A tiny in-memory filesystem per pod (paths and metadata, no contents), enough for the two commands the exec
 * endpoint runs. Files belong to the pod: a replaced pod starts empty, as a container's writable layer does.
 */
export class PodFilesystems {
  readonly #pods = new Map<string, Map<string, ContainerFile>>();

  files(namespace: string, pod: string): PodFiles {
    const key = `${namespace}/${pod}`;
    const table = () => {
      let files = this.#pods.get(key);
      if (!files) {
        files = new Map();
        this.#pods.set(key, files);
      }
      return files;
    };
    return {
      write(path, file = {}) {
        const normalized = absolute(path);
        table().set(normalized, {
          path: normalized,
          mtime: file.mtime ?? new Date(),
          size: file.size ?? 0,
        });
      },
      remove: (path) => table().delete(absolute(path)),
      has: (path) => table().has(absolute(path)),
      list: () =>
        [...table().values()]
          .map((f) => ({ ...f, mtime: new Date(f.mtime) }))
          .sort((a, b) => a.path.localeCompare(b.path)),
    };
  }
}

function absolute(path: string): string {
  if (!path.startsWith('/')) throw new TypeError(`Container file paths are absolute; got "${path}".`);
  return posix.normalize(path);
}

/** What a command run in a simulated container printed and how it ended. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Runs `argv` against a pod's files. Understood: `find <dir> -type f` with `-mmin -N` / `-mtime -N` (in any
 * order, like GNU find: modified less than N minutes / 24-hour periods ago) and `-print0` (paths ended by NUL),
 * and `rm -f -- <paths…>` (also without `--`). Anything else exits 126, as a container without the binary would report it.
 */
export function runCommand(argv: readonly string[], files: PodFiles, now: Date): CommandResult {
  const [program, ...args] = argv;
  if (program === 'find') return find(args, files, now);
  if (program === 'rm') return rm(args, files);
  return {
    stdout: '',
    stderr: `simulator: cannot run ${JSON.stringify(argv.join(' '))}: only "find <dir> -type f -mmin -N" and "rm -f -- <paths>" are simulated\n`,
    exitCode: 126,
  };
}

function find(args: string[], files: PodFiles, now: Date): CommandResult {
  const unsupported = (why: string): CommandResult => ({
    stdout: '',
    stderr: `find: ${why} (the simulator understands: find <paths…> -type f [-mmin -N | -mtime -N] [-print0])\n`,
    exitCode: 126,
  });
  const firstFlag = args.findIndex((a) => a.startsWith('-'));
  const roots = firstFlag < 0 ? args : args.slice(0, firstFlag);
  const rest = firstFlag < 0 ? [] : args.slice(firstFlag);
  if (roots.length === 0 || roots.some((r) => !r.startsWith('/'))) {
    return unsupported('expected absolute start paths first');
  }
  let maxAgeMs = Number.POSITIVE_INFINITY;
  let typeF = false;
  let end = '\n';
  for (let i = 0; i < rest.length; i += 2) {
    const flag = rest[i];
    const value = rest[i + 1];
    if (flag === '-print0') {
      end = '\0'; // GNU find: each path ended by NUL instead of a newline
      i -= 1; // a flag without a value: the next one starts right after it
    } else if (flag === '-type' && value === 'f') typeF = true;
    else if ((flag === '-mmin' || flag === '-mtime') && value && /^-\d+$/.test(value)) {
      maxAgeMs = Number(value.slice(1)) * (flag === '-mmin' ? 60_000 : 86_400_000);
    } else return unsupported(`unsupported argument ${JSON.stringify(flag)}`);
  }
  if (!typeF) return unsupported('expected -type f');
  const all = files.list();
  const seen = new Set<string>();
  let stdout = '';
  for (const start of roots) {
    const root = posix.normalize(start).replace(/(.)\/$/, '$1');
    // A start path is a file, or a directory holding the files below it. Every directory exists (the simulated
    // container has no directory tree), so an unseeded pod lists nothing rather than failing.
    const under = all.filter((f) => f.path === root || f.path.startsWith(root === '/' ? '/' : `${root}/`));
    for (const f of under) {
      if (now.getTime() - f.mtime.getTime() >= maxAgeMs || seen.has(f.path)) continue;
      seen.add(f.path);
      stdout += `${f.path}${end}`;
    }
  }
  return { stdout, stderr: '', exitCode: 0 };
}

function rm(args: string[], files: PodFiles): CommandResult {
  let i = 0;
  let force = false;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-f') force = true;
    else if (a?.startsWith('-')) {
      return {
        stdout: '',
        stderr: `rm: unsupported option ${JSON.stringify(a)} in the simulator\n`,
        exitCode: 126,
      };
    } else break;
  }
  const paths = args.slice(i);
  let stderr = '';
  for (const path of paths) {
    if (!path.startsWith('/')) {
      stderr += `rm: cannot remove '${path}': relative paths are not simulated\n`;
      continue;
    }
    if (!files.remove(path) && !force) stderr += `rm: cannot remove '${path}': No such file or directory\n`;
  }
  return { stdout: '', stderr, exitCode: stderr ? 1 : 0 };
}
