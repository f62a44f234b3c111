import { readFileSync } from 'node:fs';

/**
 * Reads the text of one of the service's files (`what`: "tokens file", "service config"). When it cannot be
 * read, throws `Failure` with a message that names the file and why: `Cannot read the <what> <path>: no such
 * file.` — the file's own error class, so callers and the CLI can tell which file was wrong.
 */
export function readConfigText(path: string, what: string, Failure: new (message: string) => Error): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOENT' ? 'no such file' : ((e as Error)?.message ?? String(e));
    throw new Failure(`Cannot read the ${what} ${path}: ${why}.`);
  }
}
