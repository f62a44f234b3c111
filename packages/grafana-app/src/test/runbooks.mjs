/**
 * The runbooks the app's component tests drive, loaded by a real `runbook serve` child process
 * (`--runbooks`). Plain ESM JavaScript because the built CLI imports it with Node itself, without a
 * TypeScript loader.
 *
 * Their world is a JSON file named by `RUNBOOK_TEST_WORLD` (the harness writes one per harness), so a test
 * reads exactly what an applied plan changed, from outside the service:
 * `{ agents: { [agent]: { replicas, debug } }, database: { primary } }`.
 *
 * - `scale-agent` (low risk): a typed input (an enum, a number, a boolean), a check, a plan that scales the
 *   agent, applied without approval; triggered by the alert `AgentReplicasLow`.
 * - `failover-database` (high risk): its plan needs an admin other than the requester to approve it.
 * - `inspect-latency`: diagnose only; its finding carries a table, log lines, a time series, a text and a link.
 *
 * Not in `runbooks` (the component tests list exactly those three): `purge-queue` (high risk, destructive),
 * in {@link browserTestRunbooks}, which the browser test's service loads besides them (e2e/runbooks.mjs).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { defineAction, defineCheck, defineRunbook, finding, resourceRef } from '@aiwebtest/runbooks';
import { z } from 'zod';

/** The agents the world starts with. */
export const AGENTS = ['generation-agent', 'requirements-agent'];

/** The world a fresh harness starts with. */
export function initialWorld() {
  return {
    agents: {
      'generation-agent': { replicas: 0, debug: false },
      'requirements-agent': { replicas: 2, debug: false },
    },
    database: { primary: 'db-a', standby: 'db-b' },
  };
}

function worldFile() {
  const file = process.env.RUNBOOK_TEST_WORLD;
  if (!file) throw new Error('RUNBOOK_TEST_WORLD is not set: the harness names the world file');
  return file;
}

function readWorld() {
  const file = worldFile();
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : initialWorld();
}

function writeWorld(world) {
  writeFileSync(worldFile(), `${JSON.stringify(world, null, 2)}\n`);
}

export const scaleAgent = defineRunbook({
  id: 'scale-agent',
  title: 'Scale an agent',
  description: 'Checks how many replicas an agent has and scales it to the count asked for.',
  severity: 'P2',
  // What the dashboards' "Runbooks…" link and the alert-instance action match on (src/extensions).
  triggers: [{ kind: 'alert', match: { alertname: 'AgentReplicasLow' } }],
  input: z.object({
    agent: z.enum(AGENTS).describe('The agent to scale'),
    replicas: z.number().int().min(1).max(10).default(2).describe('Replicas wanted'),
    debug: z.boolean().default(false).describe('Turn on debug logging while at it'),
  }),
  async run({ input, step }) {
    const now = await step.check(
      'replicas',
      defineCheck({
        kind: 'test.replicas',
        description: "Reads the agent's replica count",
        async run() {
          const agent = readWorld().agents[input.agent];
          const replicas = agent?.replicas ?? 0;
          return finding(
            replicas >= input.replicas ? 'ok' : 'fail',
            `${input.agent} has ${replicas} of ${input.replicas} replicas`,
            { replicas },
          );
        },
      }),
    );
    if (now.status === 'ok' && !input.debug) return step.done('nothing to do');
    const target = resourceRef('test', 'agents', input.agent);
    await step.act(
      'scale',
      defineAction({
        kind: 'test.scale',
        target,
        risk: 'low',
        destructive: false,
        async plan() {
          const agent = readWorld().agents[input.agent] ?? { replicas: 0, debug: false };
          const changes = [{ target, field: 'replicas', before: agent.replicas, after: input.replicas }];
          if (agent.debug !== input.debug) {
            changes.push({ target, field: 'debug', before: agent.debug, after: input.debug });
          }
          return {
            summary: `scale ${input.agent} from ${agent.replicas} to ${input.replicas} replicas`,
            changes,
            params: { replicas: input.replicas, debug: input.debug },
          };
        },
        async apply(_ctx, plan) {
          const world = readWorld();
          world.agents[input.agent] = { replicas: plan.params.replicas, debug: plan.params.debug };
          writeWorld(world);
          return { replicas: plan.params.replicas };
        },
      }),
    );
    return step.done(`${input.agent} scaled to ${input.replicas} replicas`);
  },
});

export const failoverDatabase = defineRunbook({
  id: 'failover-database',
  title: 'Fail the database over to its standby',
  description: 'Promotes the standby. High risk: an admin other than the requester approves the plan.',
  severity: 'P1',
  input: z.object({ reason: z.string().min(1).max(200).describe('Why the failover is needed') }),
  async run({ input, step }) {
    await step.check(
      'primary',
      defineCheck({
        kind: 'test.database',
        description: 'Reads which database is primary',
        async run() {
          const { database } = readWorld();
          return finding('warn', `${database.primary} is primary (${input.reason})`, database);
        },
      }),
    );
    const target = resourceRef('test', 'database', 'main');
    await step.act(
      'failover',
      defineAction({
        kind: 'test.failover',
        target,
        risk: 'high',
        destructive: false,
        async plan() {
          const { database } = readWorld();
          return {
            summary: `promote ${database.standby} to primary`,
            changes: [{ target, field: 'primary', before: database.primary, after: database.standby }],
            params: { primary: database.standby, standby: database.primary },
          };
        },
        async apply(_ctx, plan) {
          const world = readWorld();
          world.database = { primary: plan.params.primary, standby: plan.params.standby };
          writeWorld(world);
          return { primary: plan.params.primary };
        },
      }),
    );
    return step.done('failed over');
  },
});

export const inspectLatency = defineRunbook({
  id: 'inspect-latency',
  title: 'Inspect API latency',
  description: 'Diagnose only: shows latency evidence of every kind the app renders.',
  severity: 'P3',
  input: z.object({ service: z.string().min(1).default('api-gateway') }),
  async run({ input, step }) {
    await step.check(
      'latency',
      defineCheck({
        kind: 'test.latency',
        description: 'Reads p95 latency',
        async run() {
          const start = Date.UTC(2026, 10, 28, 3, 0, 0);
          const values = [120, 135, 180, 420, 650, 610];
          return finding(
            'warn',
            `${input.service} p95 latency is 610 ms (objective 300 ms)`,
            { p95Ms: 610 },
            [
              {
                kind: 'table',
                title: 'slowest endpoints',
                columns: ['endpoint', 'p95 ms', 'errors'],
                rows: [
                  ['/api/generate', 610, 3],
                  ['/api/requirements', 240, 0],
                ],
              },
              {
                kind: 'log',
                title: 'gateway log',
                lines: ['03:04:10 upstream timeout /api/generate', '03:04:12 retrying /api/generate'],
              },
              {
                kind: 'series',
                title: 'p95 latency',
                unit: 'ms',
                points: values.map((v, i) => [start + i * 60_000, v]),
              },
              { kind: 'text', title: 'note', text: 'latency rose after the 03:00 deploy' },
              { kind: 'link', title: 'dashboard', url: 'http://grafana.example/d/latency' },
            ],
          );
        },
      }),
    );
    return step.done('latency inspected');
  },
});

export const runbooks = [scaleAgent, failoverDatabase, inspectLatency];

/** The work queues `purge-queue` knows and the depth each starts with (the world has no `queues` until a purge). */
export const QUEUE_DEPTHS = { 'generation-jobs': 42, 'requirements-jobs': 7 };

// Not exported by itself: the CLI loads every named export that is a runbook, and the component tests'
// service must keep exactly `runbooks`. An array under another name than `runbooks` is not loaded.
const purgeQueue = defineRunbook({
  id: 'purge-queue',
  title: 'Purge a work queue',
  description: 'Drops every job waiting in a queue. Destructive and high risk: an admin approves the plan.',
  severity: 'P2',
  // Dashboards tagged `queues` offer it in their "Runbooks…" modal (a tag match, no trigger).
  tags: ['queues'],
  input: z.object({
    queue: z.enum(Object.keys(QUEUE_DEPTHS)).describe('The queue to purge'),
    reason: z.string().min(1).max(200).default('stuck jobs').describe('Why the jobs are dropped'),
  }),
  async run({ input, step }) {
    const depthOf = () => readWorld().queues?.[input.queue]?.depth ?? QUEUE_DEPTHS[input.queue];
    await step.check(
      'depth',
      defineCheck({
        kind: 'test.queue-depth',
        description: 'Reads how many jobs wait in the queue',
        async run() {
          const depth = depthOf();
          return finding(depth > 0 ? 'warn' : 'ok', `${input.queue} holds ${depth} jobs`, { depth });
        },
      }),
    );
    const target = resourceRef('test', 'queues', input.queue);
    await step.act(
      'purge',
      defineAction({
        kind: 'test.purge',
        target,
        risk: 'high',
        destructive: true,
        async plan() {
          const depth = depthOf();
          return {
            summary: `drop ${depth} jobs from ${input.queue} (${input.reason})`,
            changes: [{ target, field: 'depth', before: depth, after: 0 }],
            params: { queue: input.queue },
          };
        },
        async apply(_ctx, plan) {
          const world = readWorld();
          world.queues = { ...(world.queues ?? {}), [plan.params.queue]: { depth: 0 } };
          writeWorld(world);
          return { purged: plan.params.queue };
        },
      }),
    );
    return step.done(`${input.queue} purged`);
  },
});

/** Runbooks only the browser test's service loads, next to {@link runbooks} (see e2e/runbooks.mjs). */
export const browserTestRunbooks = [purgeQueue];
