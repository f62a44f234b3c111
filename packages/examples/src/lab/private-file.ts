import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';

/**
 * Writes a file only its owner may read (tokens, URLs, kubeconfig), whole or not at all: a temporary file
 * created 0600 is renamed over the old one, so a file that existed with looser permissions does not keep
 * them, and a reader never sees half of it.
 */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, content, { mode: 0o600, flag: 'wx' });
  await rename(temporary, path);
}
