/**
 * `pnpm bench` in packages/examples: the MTTR table of the manual's incidents in the lab.
 *
 * For each scenario, a fresh `aiwebtest-lab up` (lab, runbook service with the pack, Alertmanager,
 * Prometheus), the scenario injected for real and followed: the alert firing in Prometheus (detect), the
 * routed run's diagnosis (diagnose), the run ending (recover), the lab's checks for that incident passing
 * (verify); every time is from the injection. A second identity approves where the service asks.
 *
 * The baseline, measured in the same run for each incident, is detection: the alert pipeline (scrape every
 * 5 s, the rule's `for: 30s`, Alertmanager's group_wait) that no runbook can shorten. "runbook" is what the
 * runbook itself took (recover − detect), and the ratio is that against the baseline. Target (issue 8):
 * each incident recovered automatically within 60 s of its alert.
 *
 * Writes bench/results.json. Needs PostgreSQL, Redis, pgbouncer, prometheus and prometheus-alertmanager
 * as the tests do (scripts/services.sh), and a build (`pnpm build`).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropLabDatabase } from '../src/lab/database/lab-database';
import { type DrillResult, IncidentDrill } from '../src/lab/incident-drill';
import { labUp } from '../src/lab/lab-up';
import { SCENARIOS, type ScenarioName } from '../src/lab/scenarios';

/** The lab checks that say each incident is over (the ones a runbook can mend; see the README). */
const VERIFY: Record<ScenarioName, string[]> = {
  'requirements-agent-down': ['agent requirements-agent'],
  'generation-quality-drop': ['generation confidence'],
  'execution-stuck': ['stuck executions', 'selenium grid'],
  'postgres-connection-loss': ['database', 'pgbouncer pool', 'backend'],
  'database-slow': ['database activity'],
  'openrouter-outage': ['database'],
  'openrouter-rate-limit': ['database'],
  'api-latency': ['database'],
  'test-execution-slow': ['selenium grid'],
  'total-failure': ['platform workloads', 'database', 'backend', 'redis'],
  'login-attack': ['security incident'],
  'model-accuracy-drop': ['model accuracy'],
  'data-drift': ['data drift'],
};

const only = process.argv.slice(2).filter((a) => SCENARIOS.safeParse(a).success) as ScenarioName[];
const scenarios = only.length > 0 ? only : SCENARIOS.options;

/** One scenario in a lab of its own: a runbook leaves the platform mitigated, which would hide the next. */
async function drillOnce(scenario: ScenarioName): Promise<DrillResult> {
  const dir = await mkdtemp(join(tmpdir(), 'aiwebtest-bench-'));
  const database = `aiwebtest_lab_bench_${process.pid}`;
  const up = await labUp(
    {
      dir,
      database,
      resetDatabase: true,
      redisUrl: 'redis://127.0.0.1:6379/3',
      controlPort: 0,
      servicePort: 0,
      prometheusPort: 0,
      alertmanagerPort: 0,
    },
    (line) => console.error(`  … ${line}`),
  );
  try {
    const drill = await IncidentDrill.on(up);
    return await drill.drill(scenario, { healthChecks: VERIFY[scenario], timeoutMs: 300_000 });
  } finally {
    await up.stop();
    await dropLabDatabase({ adminUrl: 'postgres://postgres@127.0.0.1:5432/postgres', database }).catch(
      () => {},
    );
    await rm(dir, { recursive: true, force: true });
  }
}

const results: (DrillResult | { scenario: ScenarioName; error: string })[] = [];
for (const scenario of scenarios) {
  console.error(`… ${scenario}`);
  try {
    results.push(await drillOnce(scenario));
  } catch (e) {
    results.push({ scenario, error: e instanceof Error ? e.message : String(e) });
  }
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rows = results.map((r) =>
  'error' in r
    ? `| ${r.scenario} | | failed: ${r.error.replace(/\|/g, '/')} | | | | | | |`
    : `| ${r.scenario} | ${r.runbook} | ${s(r.detectMs)} | ${s(r.diagnoseMs)} | ${s(r.recoverMs)} | ${s(r.verifyMs)} | ${s(r.recoverMs - r.detectMs)} | ${((r.recoverMs - r.detectMs) / r.detectMs).toFixed(2)}× | ${r.approvals} |`,
);
console.log(
  '| scenario | runbook | detect (baseline) | diagnose | recover | verify | runbook (recover − detect) | runbook / baseline | approvals |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
const ok = results.filter((r): r is DrillResult => !('error' in r));
const within = ok.filter((r) => r.recoverMs - r.detectMs < 60_000).length;
console.log(`\n${within}/${results.length} recovered within 60 s of their alert.`);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results.json');
await writeFile(
  out,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      results: results.map((r) =>
        'error' in r ? r : { ...r, run: { id: r.run.run.id, status: r.run.run.status } },
      ),
    },
    null,
    2,
  )}\n`,
);
console.error(`written to ${out}`);
