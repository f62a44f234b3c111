import { sha256 } from '../core/json';
import { GENESIS_HASH } from '../store/migrations';
import type { RunStore } from '../store/run-store';

/** One problem the verification found. */
export interface AuditProblem {
  seq: number;
  problem: 'edited' | 'missing' | 'reordered' | 'head-mismatch';
  message: string;
}

/** The verdict of {@link verifyAuditChain}. */
export interface AuditVerification {
  ok: boolean;
  /** Entries checked. */
  entries: number;
  /** The chain's latest hash: record it elsewhere to anchor the log against a rewrite of the whole chain. */
  headHash: string;
  problems: AuditProblem[];
}

/** The hash of an audit link, exactly as the store computes it in SQL. */
export function auditLinkHash(prevHash: string, seq: number, entry: string): string {
  return sha256(`${prevHash}|${seq}|${entry}`);
}

/**
 * Recomputes the audit log's hash chain. Finds any edited entry (its hash no longer matches), removed entry
 * (a gap in the sequence, or a head that points past the last row) and reordered entries (sequence and
 * links disagree). Reads the log in pages so a long log does not have to fit in memory.
 */
export async function verifyAuditChain(store: RunStore, pageSize = 5_000): Promise<AuditVerification> {
  const problems: AuditProblem[] = [];
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let entries = 0;
  for (let after = 0; ; ) {
    const rows = await store.readAudit(after, pageSize);
    if (rows.length === 0) break;
    for (const row of rows) {
      entries++;
      if (row.seq !== expectedSeq) {
        problems.push({
          seq: expectedSeq,
          problem: 'missing',
          message: `entries ${expectedSeq}..${row.seq - 1} are missing (the log jumps from ${expectedSeq - 1} to ${row.seq})`,
        });
      } else if (row.prevHash !== prevHash) {
        problems.push({
          seq: row.seq,
          problem: 'reordered',
          message: `entry ${row.seq} does not link to entry ${row.seq - 1}: entries were moved or replaced`,
        });
      }
      if (auditLinkHash(row.prevHash, row.seq, row.entry) !== row.hash) {
        problems.push({
          seq: row.seq,
          problem: 'edited',
          message: `entry ${row.seq} was changed after it was written`,
        });
      }
      prevHash = row.hash;
      expectedSeq = row.seq + 1;
      after = row.seq;
    }
  }
  const head = await store.auditHead();
  if (head.seq !== expectedSeq - 1 || head.hash !== prevHash) {
    problems.push({
      seq: head.seq,
      problem: 'head-mismatch',
      message: `the chain head says ${head.seq} entries ending in ${head.hash.slice(0, 12)}, the log has ${expectedSeq - 1} ending in ${prevHash.slice(0, 12)}: the newest entries were removed or the head was edited`,
    });
  }
  return { ok: problems.length === 0, entries, headHash: head.hash, problems };
}
