/**
 * A real engine process for the crash and multi-process tests. It executes queued runs of the
 * `effects` runbook from a PostgreSQL store until none are left (`drain`) or forever (`serve`),
 * printing `ready` once the store is open and a JSON summary at the end.
 *
 *   node --import tsx test/support/worker.ts <schema> drain|serve
 */
import pg from 'pg';
import { Engine } from '../../src/engine/engine';
import { openStore } from '../../src/store/open-store';
import { effectsRunbook } from './effects-runbook';
import { POSTGRES_URL } from './stores';

const [schema, mode = 'drain'] = process.argv.slice(2);
if (!schema) throw new Error('usage: worker.ts <schema> drain|serve');

const effects = new pg.Pool({ connectionString: POSTGRES_URL, max: 2, options: `-c search_path=${schema}` });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const runbook = effectsRunbook(effects);

const store = await openStore({ url: POSTGRES_URL, schema });
const engine = new Engine({ store, runbooks: [runbook], leaseTtl: '600ms' });
process.stdout.write('ready\n');

let executed = 0;
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
for (;;) {
  if (stop.signal.aborted) break;
  const result = await engine.runNext();
  if (result) {
    executed++;
    continue;
  }
  if (mode === 'drain') {
    // Done when nothing is queued or running; runs held by a dead process become claimable once their lease expires.
    const { rows } = await effects.query(
      `SELECT count(*)::int AS n FROM runs WHERE status IN ('queued', 'running')`,
    );
    if (rows[0].n === 0) break;
  }
  await pause(50);
}
process.stdout.write(`${JSON.stringify({ pid: process.pid, executed })}\n`);
await store.close();
await effects.end();
