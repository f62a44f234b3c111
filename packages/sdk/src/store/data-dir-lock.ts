import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { RunbookError } from '../core/errors';

/**
 * PGlite keeps no inter-process lock: two processes on one data directory would each cache and write it,
 * and corrupt it. The embedded driver therefore holds `<dataDir>.lock` (with its pid) while the store is
 * open; a lock left by a process that died is taken over. Returns the function that releases it.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = `${dataDir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      if (Number.isInteger(holder) && isAlive(holder)) {
        throw new RunbookError(
          'STORE_IN_USE',
          `The embedded store ${dataDir} is in use by another runbook process (pid ${holder}). Wait for it to finish, or keep runs in PostgreSQL (--store-url / RUNBOOK_DATABASE_URL) to use several processes at once.`,
          { retriable: false },
        );
      }
      rmSync(path, { force: true }); // stale: its process is gone
      continue;
    }
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return () => rmSync(path, { force: true });
  }
  throw new Error(`Could not lock the embedded store ${dataDir} (${path} keeps reappearing).`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by another user
  }
}
