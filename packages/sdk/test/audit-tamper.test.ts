import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../src/engine/audit-chain';
import type { AuditRow } from '../src/store/records';
import { DRIVERS, type StoreUnderTest } from './support/stores';

const ENTRIES = 8;

describe.each(Object.entries(DRIVERS))('audit tampering on %s', (_name, open) => {
  let sut: StoreUnderTest;
  let original: AuditRow[];
  let head: { seq: number; hash: string };

  beforeAll(async () => {
    sut = await open();
    for (let i = 0; i < ENTRIES; i++) {
      await sut.store.appendAudit({
        ts: new Date(i * 1000).toISOString(),
        actor: 'alice',
        kind: 'test',
        data: { i },
      });
    }
    original = await sut.store.readAudit();
    head = await sut.store.auditHead();
  });
  afterAll(async () => {
    await sut.dispose();
  });

  const q = (sql: string, params: unknown[] = []) => sut.store.driver.query(sql, params);
  /** Puts the log back exactly as it was, so each case starts from an intact chain. */
  const restore = async () => {
    await q('DELETE FROM audit');
    for (const r of original) {
      await q('INSERT INTO audit (seq, entry, prev_hash, hash) VALUES ($1, $2, $3, $4)', [
        r.seq,
        r.entry,
        r.prevHash,
        r.hash,
      ]);
    }
    await q('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [head.seq, head.hash]);
  };
  const problems = async () => (await verifyAuditChain(sut.store)).problems.map((p) => p.problem);

  it('verifies the intact log', async () => {
    expect(await verifyAuditChain(sut.store)).toMatchObject({ ok: true, entries: ENTRIES, problems: [] });
  });

  for (const position of [1, Math.ceil(ENTRIES / 2), ENTRIES]) {
    it(`detects an edit of entry ${position}`, async () => {
      await q(
        `UPDATE audit SET entry = replace(entry, '"actor":"alice"', '"actor":"mallory"') WHERE seq = $1`,
        [position],
      );
      expect(await problems()).toContain('edited');
      await restore();
    });

    it(`detects an edit of entry ${position} even with its own hash recomputed`, async () => {
      await q(
        `UPDATE audit SET entry = replace(entry, '"actor":"alice"', '"actor":"mallory"') WHERE seq = $1;`,
        [position],
      );
      await q(
        `UPDATE audit SET hash = encode(sha256(convert_to(prev_hash || '|' || seq::text || '|' || entry, 'UTF8')), 'hex') WHERE seq = $1`,
        [position],
      );
      expect((await verifyAuditChain(sut.store)).ok).toBe(false);
      await restore();
    });

    it(`detects the removal of entry ${position}`, async () => {
      await q('DELETE FROM audit WHERE seq = $1', [position]);
      expect((await problems()).some((p) => p === 'missing' || p === 'head-mismatch')).toBe(true);
      await restore();
    });
  }

  it('detects two entries swapped', async () => {
    await q('UPDATE audit SET seq = -seq WHERE seq IN (3, 4)');
    await q('UPDATE audit SET seq = 4 WHERE seq = -3');
    await q('UPDATE audit SET seq = 3 WHERE seq = -4');
    const found = await problems();
    expect(found.some((p) => p === 'reordered' || p === 'edited')).toBe(true);
    await restore();
  });

  it('detects a rewritten head', async () => {
    await q(`UPDATE audit_head SET hash = repeat('f', 64) WHERE id = 1`);
    expect(await problems()).toEqual(['head-mismatch']);
    await restore();
    expect((await verifyAuditChain(sut.store)).ok).toBe(true);
  });
});
