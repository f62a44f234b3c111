import { randomBytes } from 'node:crypto';
import { constants, copyFileSync, lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InvalidStateError } from '../../core/errors';

/** A file `runbook init` writes. */
export interface FileToWrite {
  path: string;
  /** The path as the user typed or would type it, for messages. */
  shown: string;
  source: string;
}

/** A target put in place, and where what it replaced was moved to (`undefined`: it replaced nothing). */
interface Placed {
  file: FileToWrite;
  backup: string | undefined;
}

/**
 * Writes every file, or none. Each is first written in full to a temporary file beside it (same directory,
 * so that putting it in place is a rename); only when all are written are they put in place. With `force`,
 * what a file replaces is moved aside first (a symbolic link as the link) and moved back if a later file
 * cannot be placed, and a file that replaced nothing is removed again. Without `force`, nothing that exists
 * is ever replaced: a file that appeared since the caller looked is an {@link InvalidStateError}, and nothing
 * is written. Temporary files are removed whatever happens.
 */
export function writeAllOrNothing(files: readonly FileToWrite[], options: { force: boolean }): void {
  const temporary: string[] = [];
  const placed: Placed[] = [];
  try {
    // Everything that can fail on content (a full disk, a directory we may not write) fails here, before any
    // target is touched.
    const staged = files.map((file) => {
      const temp = sibling(file.path, 'tmp');
      temporary.push(temp);
      writeFileSync(temp, file.source, { flag: 'wx' });
      return { file, temp };
    });
    for (const { file, temp } of staged) {
      if (options.force) {
        const backup = moveAside(file.path);
        if (backup) placed.push({ file, backup });
        // A directory at the target makes this throw (EISDIR), with nothing changed for this file.
        renameSync(temp, file.path);
        if (!backup) placed.push({ file, backup: undefined });
      } else {
        try {
          // Exclusive: refuses a target that exists.
          copyFileSync(temp, file.path, constants.COPYFILE_EXCL);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new InvalidStateError(
              `${file.shown} appeared while init was writing. Nothing was written.`,
            );
          }
          // Any other error: the target did not exist (the exclusive create would have said so), so what may
          // be there now is our partial copy.
          placed.push({ file, backup: undefined });
          throw e;
        }
        placed.push({ file, backup: undefined });
      }
    }
  } catch (e) {
    const kept = undo(placed);
    if (kept.length > 0) {
      // Never lose someone's file: say where it is rather than remove it with the temporary files.
      throw new Error(
        `${(e as Error).message ?? String(e)}; and ${kept.map((k) => `${k.file.shown} could not be put back: its previous content is in ${k.backup}`).join('; ')}`,
        { cause: e },
      );
    }
    throw e;
  } finally {
    for (const path of temporary) bestEffort(() => rmSync(path, { force: true }));
  }
  // Placed, all of them: what they replaced goes.
  for (const { backup } of placed) if (backup) bestEffort(() => rmSync(backup, { force: true }));
}

/** Puts back what `placed` replaced, newest first, and removes what replaced nothing; returns what it could not put back. */
function undo(placed: readonly Placed[]): Placed[] {
  const kept: Placed[] = [];
  for (const entry of [...placed].reverse()) {
    const { file, backup } = entry;
    try {
      if (backup) renameSync(backup, file.path);
      else rmSync(file.path, { force: true });
    } catch {
      if (backup) kept.push(entry);
    }
  }
  return kept;
}

/** Runs a clean-up step whose failure must not hide the outcome (a stray temporary file is harmless). */
function bestEffort(step: () => void): void {
  try {
    step();
  } catch {}
}

/**
 * Moves what is at `path` aside, beside it, and returns where; `undefined` when there is nothing, or a
 * directory (never moved: the rename of the new file onto it fails instead, changing nothing).
 */
function moveAside(path: string): string | undefined {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat || stat.isDirectory()) return undefined;
  const backup = sibling(path, 'bak');
  renameSync(path, backup);
  return backup;
}

/** A name in `path`'s directory that nothing else uses: `.name.<random>.<suffix>`. */
function sibling(path: string, suffix: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.${suffix}`);
}
