import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineAction, defineCheck, defineRunbook, Engine, finding, openStore, resourceRef } from '../../src';
import { createServer, hashToken } from '../../src/server';
import { expectDocsShowTested } from '../support/docs-drift';

// Keeps SERVICE.md honest. The code between the docs markers below is its in-process example (shown there
// as `service.ts`), copied exactly except the import lines (the docs import the package, this file the
// sources); the last describe block checks the copy. The `sh` blocks of SERVICE.md whose first line is
// `# <name>` are run here as they are written, by bash with the real /usr/bin/curl, against the service
// that example starts (RUNBOOK_URL and the tokens come from the environment, as the docs say), and their
// documented answers are asserted, including the effect of the runs they start.

const SERVICE_MD = new URL('../../SERVICE.md', import.meta.url);
const CURL = '/usr/bin/curl';
const ADA = 'ada-docs-token-0d3f9c';
const ALERTMANAGER = 'alertmanager-docs-token-71b2e4';
process.env.ADA_TOKEN = ADA;
process.env.ALERTMANAGER_TOKEN = ALERTMANAGER;

// docs:begin service.ts
// What the runbook looks after: replica counts of the agents (in production, the cluster).
const replicas = new Map<string, number>([['generation-agent', 0]]);

const scaleUp = defineRunbook({
  id: 'scale-up',
  title: 'Scale a stopped agent back up',
  severity: 'P2',
  input: z.object({ agent: z.string().min(1) }),
  async run({ input, step }) {
    const count = await step.check(
      'replicas',
      defineCheck({
        kind: 'demo.replicas',
        run: async () => {
          const n = replicas.get(input.agent) ?? 0;
          return finding(n > 0 ? 'ok' : 'fail', `${input.agent} has ${n} replicas`, { replicas: n });
        },
      }),
    );
    if (count.status === 'ok') return step.done('nothing to do');
    const target = resourceRef('demo', 'agents', input.agent);
    await step.act(
      'scale',
      defineAction({
        kind: 'demo.scale',
        target,
        risk: 'low',
        destructive: false,
        plan: async () => ({
          summary: `scale ${input.agent} to 2 replicas`,
          changes: [{ target, field: 'replicas', before: 0, after: 2 }],
          params: {},
        }),
        apply: async () => {
          replicas.set(input.agent, 2);
          return {};
        },
      }),
    );
    return step.done(`${input.agent} scaled to 2 replicas`);
  },
});

/** The SHA-256 of a token taken from the environment: the service never holds a token itself. */
function tokenHash(variable: string): string {
  const token = process.env[variable];
  if (!token) throw new Error(`${variable} is not set`);
  return hashToken(token);
}

// The embedded store (PGlite, one process); openStore({ url: 'postgres://…' }) for replicas sharing PostgreSQL.
const store = await openStore({ dataDir: ':memory:' });
const engine = new Engine({ store, runbooks: [scaleUp] });
const app = createServer({
  engine,
  tokens: [
    { name: 'ada', role: 'admin', sha256: tokenHash('ADA_TOKEN') },
    // Valid only on Alertmanager's webhook, which takes no other token.
    { name: 'alertmanager', role: 'editor', alertmanager: true, sha256: tokenHash('ALERTMANAGER_TOKEN') },
  ],
  alerts: {
    routes: [
      {
        name: 'agent-down',
        match: { alertname: 'AgentDown' },
        runbook: 'scale-up',
        input: { agent: '{{ labels.agent }}' },
        mode: 'execute',
      },
    ],
  },
});
const url = await app.listen({ host: '127.0.0.1', port: 0 }); // port 0: any free port
console.log(`runbook service on ${url}`);

// The API only queues execute-mode runs; a worker executes them (serve() runs one in the same process).
const stopWorker = new AbortController();
const worker = engine.work({ signal: stopWorker.signal, pollInterval: '100ms' });
// docs:end service.ts

afterAll(async () => {
  stopWorker.abort();
  await worker;
  await app.close();
  await store.close();
});

/** The `sh` block of SERVICE.md whose first line is `# <name>`; exactly one must exist. */
function shBlock(name: string): string {
  const markdown = readFileSync(SERVICE_MD, 'utf8');
  const blocks = [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .filter((block) => block.startsWith(`# ${name}\n`));
  expect(blocks, `one \`sh\` block starting with "# ${name}" in SERVICE.md`).toHaveLength(1);
  return blocks[0] ?? '';
}

/** Runs a documented `sh` block with bash, as written, and returns its stdout. Fails when curl is missing. */
async function runSh(name: string, env: Record<string, string> = {}): Promise<string> {
  const script = shBlock(name);
  const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], {
    env: {
      PATH: `${CURL.replace(/\/curl$/, '')}:${process.env.PATH ?? ''}`,
      RUNBOOK_URL: url,
      TOKEN: ADA,
      ALERTMANAGER_TOKEN: ALERTMANAGER,
      ...env,
    },
    timeout: 20_000,
  });
  return stdout;
}

/** Splits `curl -i` output into status, headers (lowercase names) and the JSON body. */
function parseHttp(output: string): { status: number; headers: Record<string, string>; body: unknown } {
  const [head = '', ...rest] = output.split(/\r?\n\r?\n/);
  const [statusLine = '', ...lines] = head.split(/\r?\n/);
  const headers = Object.fromEntries(
    lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(rest.join('\n\n')) };
}

/** The `json` block that follows the `sh` block `# <name>` in SERVICE.md: the documented answer. */
function documentedAnswer(name: string): unknown {
  const markdown = readFileSync(SERVICE_MD, 'utf8');
  const match = new RegExp(`\`\`\`sh\\n# ${name}\\n[\\s\\S]*?\`\`\`\\s*\`\`\`json\\n([\\s\\S]*?)\`\`\``).exec(
    markdown,
  );
  if (!match?.[1]) throw new Error(`no \`json\` block right after the "# ${name}" block in SERVICE.md`);
  return JSON.parse(match[1]);
}

/** The keys of an object, sorted, to compare the shape of a documented answer with the real one. */
const keys = (value: unknown) => Object.keys(value as object).sort();

describe('SERVICE.md, run against the service of its example', () => {
  it('checks that curl is installed (the examples need it)', () => {
    expect(() => readFileSync(CURL)).not.toThrow();
  });

  let runId = '';

  it('POST /runs with an idempotency key queues one run; the retry answers with it', async () => {
    const first = parseHttp(await runSh('start-run'));
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ runId: expect.any(String), replayed: false });
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    runId = (first.body as { runId: string }).runId;

    const retry = parseHttp(await runSh('start-run'));
    expect(retry.status).toBe(202);
    expect(retry.body).toEqual({ runId, replayed: true });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(keys(documentedAnswer('start-run'))).toEqual(keys(first.body));

    // One run, with the context the request carried.
    const runs = await store.listRuns({ runbookId: 'scale-up', limit: 10 });
    expect(runs.map((r) => r.id)).toEqual([runId]);
    expect(runs[0]?.context).toEqual({ source: 'cli', labels: { incident: 'INC-4711' } });
  });

  it('GET /runs/:id/events as JSON pages until done; the worker applied the plan', async () => {
    let page: { events: { kind: string; seq: number }[]; nextAfter: number; status: string; done: boolean };
    page = { events: [], nextAfter: 0, status: 'queued', done: false };
    await vi.waitFor(
      async () => {
        page = JSON.parse(await runSh('run-events', { RUN_ID: runId }));
        expect(page.done).toBe(true);
      },
      { timeout: 15_000, interval: 200 },
    );
    expect(keys(documentedAnswer('run-events'))).toEqual(keys(page));
    expect(page.status).toBe('succeeded');
    const kinds = page.events.map((e) => e.kind);
    expect(kinds[0]).toBe('run.created');
    // The documented page is this one, times and the plan hash aside.
    const mask = (events: unknown[]) =>
      JSON.parse(
        JSON.stringify(events)
          .replace(/"ts":"[^"]*"/g, '"ts":"…"')
          .replace(/"planHash":"[^"]*"/g, '"planHash":"…"'),
      );
    const shown = documentedAnswer('run-events') as typeof page;
    expect(mask(shown.events)).toEqual(mask(page.events));
    expect(page.nextAfter).toBe(page.events.at(-1)?.seq);
    expect(replicas.get('generation-agent')).toBe(2);
  });

  it('the SSE form replays the same events and ends with `event: end` once the run has ended', async () => {
    const text = await runSh('run-events-sse', { RUN_ID: runId });
    const events = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(events[0]).toBe('run.created');
    expect(events.at(-1)).toBe('end');
    expect(text).toMatch(/^id: \d+$/m);
    expect(text).toMatch(/^data: \{"status":"succeeded","lastSeq":\d+\}$/m);
  });

  it('a bad input is a 400 naming the field; nothing starts', async () => {
    const before = (await store.listRuns({ limit: 100 })).length;
    const answer = JSON.parse(await runSh('bad-input'));
    expect(answer).toEqual(documentedAnswer('bad-input'));
    expect((await store.listRuns({ limit: 100 })).length).toBe(before);
  });

  it("Alertmanager's webhook queues one run per alert occurrence; a redelivery starts nothing", async () => {
    const first = JSON.parse(await runSh('alertmanager-webhook'));
    expect(first).toEqual({
      received: 1,
      runs: [
        { fingerprint: '5f1c2a3b4d5e6f70', route: 'agent-down', runId: expect.any(String), created: true },
      ],
      resolved: 0,
      unmatched: 0,
      unroutable: [],
    });
    const shown = documentedAnswer('alertmanager-webhook') as typeof first;
    expect(keys(shown)).toEqual(keys(first));
    const anyRun = (runs: { runId: string }[]) => runs.map((r) => ({ ...r, runId: '…' }));
    expect({ ...shown, runs: anyRun(shown.runs) }).toEqual({ ...first, runs: anyRun(first.runs) });
    const alertRun = first.runs[0].runId as string;

    const again = JSON.parse(await runSh('alertmanager-webhook'));
    expect(again.runs).toEqual([{ ...first.runs[0], created: false }]);

    // The run: actor the webhook token, context the alert, executed by the worker.
    await vi.waitFor(async () => expect((await engine.getRun(alertRun)).run.status).toBe('succeeded'), {
      timeout: 15_000,
      interval: 100,
    });
    const { run } = await engine.getRun(alertRun);
    expect(run.requestedBy).toBe('alertmanager');
    expect(run.context).toMatchObject({
      source: 'alertmanager',
      receiver: 'runbooks',
      alert: { fingerprint: '5f1c2a3b4d5e6f70', labels: { agent: 'requirements-agent' } },
    });
    expect(replicas.get('requirements-agent')).toBe(2);

    const alerts = JSON.parse(await runSh('list-alerts'));
    expect(alerts.alerts).toEqual([
      expect.objectContaining({ fingerprint: '5f1c2a3b4d5e6f70', route: 'agent-down', runId: alertRun }),
    ]);
  });

  it('the audit log lists every entry and verifies', async () => {
    const verify = JSON.parse(await runSh('audit-verify'));
    expect(verify).toMatchObject({ ok: true, problems: [] });
    expect(verify.entries).toBeGreaterThan(0);
  });
});

describe('the metrics the docs list are those GET /metrics exposes', () => {
  /** `name → type` of every `runbook_*` metric in the exposition. */
  async function exposed(): Promise<Record<string, string>> {
    const text = await (await fetch(`${url}/metrics`)).text();
    return Object.fromEntries([...text.matchAll(/^# TYPE (runbook_\w+) (\w+)$/gm)].map((m) => [m[1], m[2]]));
  }
  /** `name → type` of the rows of a Markdown table whose first cell is a `runbook_*` metric. */
  function listed(file: URL): Record<string, string> {
    const rows = readFileSync(file, 'utf8').matchAll(/^\| `(runbook_\w+)(?:\{[\w,]*\})?` +\| (\w+) /gm);
    return Object.fromEntries([...rows].map((m) => [m[1], m[2]]));
  }

  it('SERVICE.md and deploy/prometheus/README.md list every runbook_* metric with its type', async () => {
    const metrics = await exposed();
    expect(Object.keys(metrics)).toHaveLength(8);
    expect(listed(SERVICE_MD)).toEqual(metrics);
    expect(listed(new URL('../../../../deploy/prometheus/README.md', import.meta.url))).toEqual(metrics);
  });
});

describe('the docs show exactly the code tested here', () => {
  it('SERVICE.md shows service.ts as tested', () => {
    expectDocsShowTested(SERVICE_MD, new URL(import.meta.url), 'service.ts');
  });
});
