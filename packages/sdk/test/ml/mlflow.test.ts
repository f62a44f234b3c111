import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineRunbook } from '../../src/core/runbook';
import { modelPromote, modelRollback } from '../../src/ml/mlflow/alias-move';
import { modelChampion } from '../../src/ml/mlflow/model-champion';
import { connectMlflow, type MlflowRegistry } from '../../src/ml/mlflow/registry';
import { modelStageTransition } from '../../src/ml/mlflow/stage-transition';
import { modelVersionTag } from '../../src/ml/mlflow/version-tag';
import { type MlflowDouble, startMlflowDouble } from '../../src/testing/ml/mlflow-double';
import { engineFixture } from '../support/engine-fixture';
import { sealAsEngine, stepContext } from '../support/kubernetes';
import { postgresStore, uniqueSchema } from '../support/stores';

// The MLflow model registry client, checks and actions against the MLflow double (the registry's REST wire
// format over real HTTP on 127.0.0.1).

const TOKEN = 'mlflow-test-token-0123456789';
let mlflow: MlflowDouble;
let registry: MlflowRegistry;

beforeEach(async () => {
  mlflow = await startMlflowDouble({
    token: TOKEN,
    models: [
      {
        name: 'generation_model',
        versions: [
          { tags: { accuracy: '0.91' } },
          { tags: { accuracy: '0.92' }, stage: 'Archived' },
          { tags: { accuracy: '0.93' }, stage: 'Production' },
          { tags: { accuracy: '0.71' }, stage: 'Staging' },
          { status: 'PENDING_REGISTRATION' },
        ],
        aliases: { champion: '4', previous: '3', challenger: '2' },
      },
    ],
  });
  registry = connectMlflow({ url: mlflow.url, token: TOKEN });
});

afterEach(async () => {
  await mlflow.close();
});

describe('MlflowRegistry (MLflow double over HTTP)', () => {
  it('reads an alias, a version and a model, with the bearer token', async () => {
    const champion = await registry.getAlias('generation_model', 'champion');
    expect(champion).toMatchObject({
      model: 'generation_model',
      version: '4',
      status: 'READY',
      stage: 'Staging',
      aliases: ['champion'],
      tags: { accuracy: '0.71' },
    });
    expect((await registry.getModelVersion('generation_model', '3'))?.aliases).toEqual(['previous']);
    expect((await registry.getRegisteredModel('generation_model'))?.aliases).toEqual({
      champion: '4',
      previous: '3',
      challenger: '2',
    });
    expect(mlflow.requests.map((r) => [r.method, r.path, r.query, r.auth])).toEqual([
      [
        'GET',
        '/api/2.0/mlflow/registered-models/alias',
        { name: 'generation_model', alias: 'champion' },
        'bearer',
      ],
      ['GET', '/api/2.0/mlflow/model-versions/get', { name: 'generation_model', version: '3' }, 'bearer'],
      ['GET', '/api/2.0/mlflow/registered-models/get', { name: 'generation_model' }, 'bearer'],
    ]);
  });

  it('reads a missing alias, version or model as null (400 INVALID_PARAMETER_VALUE and 404 alike)', async () => {
    expect(await registry.getAlias('generation_model', 'staging')).toBeNull();
    expect(await registry.getModelVersion('generation_model', '99')).toBeNull();
    expect(await registry.getRegisteredModel('nope')).toBeNull();
    expect(mlflow.requests.map((r) => r.status)).toEqual([400, 404, 404]);
    const other = await startMlflowDouble({ missingAlias: 404, models: [{ name: 'm', versions: [{}] }] });
    try {
      expect(await connectMlflow({ url: other.url }).getAlias('m', 'champion')).toBeNull();
      expect(other.requests[0]?.status).toBe(404);
    } finally {
      await other.close();
    }
  });

  it('sets and deletes aliases with MLflow’s body (version as a string), and the double holds the result', async () => {
    await registry.setAlias('generation_model', 'champion', '3');
    await registry.deleteAlias('generation_model', 'challenger');
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '3' });
    expect(mlflow.requests.map((r) => [r.method, r.body])).toEqual([
      ['POST', { name: 'generation_model', alias: 'champion', version: '3' }],
      ['DELETE', { name: 'generation_model', alias: 'challenger' }],
    ]);
  });

  it('turns error answers into MlServiceErrors with MLflow’s error_code, without the token', async () => {
    await expect(registry.setAlias('generation_model', 'champion', '42')).rejects.toMatchObject({
      code: 'MLFLOW_ERROR',
      status: 404,
      errorCode: 'RESOURCE_DOES_NOT_EXIST',
      retriable: false,
      message: expect.stringContaining('Model Version (name=generation_model, version=42) not found'),
    });
    const anonymous = connectMlflow({ url: mlflow.url });
    const denied = await anonymous.getAlias('generation_model', 'champion').catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'MLFLOW_ERROR', status: 401, errorCode: 'UNAUTHENTICATED' });
    mlflow.faults.inject({ status: 503, times: 1 });
    const busy = await registry.getAlias('generation_model', 'champion').catch((e: unknown) => e);
    expect(busy).toMatchObject({
      code: 'MLFLOW_ERROR',
      status: 503,
      errorCode: 'TEMPORARILY_UNAVAILABLE',
      retriable: true,
    });
    expect(JSON.stringify(registry)).not.toContain(TOKEN);
    expect(String((busy as Error).message)).not.toContain(TOKEN);
  });

  it('reports an unreachable server as retriable MLFLOW_UNREACHABLE naming only the origin', async () => {
    const gone = connectMlflow({ url: mlflow.url, timeout: '2s' });
    await mlflow.close();
    await expect(gone.getAlias('generation_model', 'champion')).rejects.toMatchObject({
      code: 'MLFLOW_UNREACHABLE',
      retriable: true,
      message: expect.stringMatching(/^MLflow at http:\/\/127\.0\.0\.1:\d+ is unreachable/),
    });
  });
});

describe('modelChampion', () => {
  it('finds the champion version with its status, tags and the other aliases', async () => {
    const found = await modelChampion(registry, { model: 'generation_model' }).run(stepContext());
    expect(found.status).toBe('ok');
    expect(found.summary).toBe('Model generation_model "champion" is version 4 (READY)');
    expect(found.data).toMatchObject({
      version: '4',
      status: 'READY',
      tags: { accuracy: '0.71' },
      aliases: { champion: '4', previous: '3', challenger: '2' },
    });
    const expected = await modelChampion(registry, { model: 'generation_model', expectedVersion: 3 }).run(
      stepContext(),
    );
    expect(expected.status).toBe('warn');
    expect(expected.summary).toMatch(/but version 3 was expected$/);
  });

  it('fails without a champion alias, or when the champion is not READY', async () => {
    await registry.deleteAlias('generation_model', 'champion');
    expect((await modelChampion(registry, { model: 'generation_model' }).run(stepContext())).summary).toBe(
      'Model generation_model has no "champion" alias: nothing is marked to serve',
    );
    await registry.setAlias('generation_model', 'champion', '5');
    const pending = await modelChampion(registry, { model: 'generation_model' }).run(stepContext());
    expect([pending.status, pending.data.status]).toEqual(['fail', 'PENDING_REGISTRATION']);
  });
});

describe('modelRollback and modelPromote', () => {
  it('plans champion 4→3 and previous 3→4; apply, verify and revert move the aliases exactly', async () => {
    const action = modelRollback(registry, { model: 'generation_model', version: '3' });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    expect(plan.summary).toBe('Model generation_model "champion": version 4 → 3, keeping 4 as "previous"');
    expect(plan.changes).toEqual([
      {
        target: 'mlflow:127.0.0.1/model/generation_model',
        field: 'aliases.champion',
        before: '4',
        after: '3',
      },
      {
        target: 'mlflow:127.0.0.1/model/generation_model',
        field: 'aliases.previous',
        before: '3',
        after: '4',
      },
    ]);
    expect(mlflow.aliases('generation_model')).toMatchObject({ champion: '4', previous: '3' });

    const data = await action.apply(stepContext(), plan);
    expect(data).toEqual({ alias: 'champion', version: '3', previous: '4' });
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '4', challenger: '2' });
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    expect((await action.verify?.(stepContext(), applied))?.status).toBe('ok');

    await action.revert?.(stepContext(), applied);
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '4', previous: '3', challenger: '2' });
  });

  it('plans nothing when the champion already is the target, and refuses a missing or unready version', async () => {
    const same = await modelRollback(registry, { model: 'generation_model', version: 4 }).plan(stepContext());
    expect(same.changes).toEqual([]);
    await expect(
      modelRollback(registry, { model: 'generation_model', version: 9 }).plan(stepContext()),
    ).rejects.toMatchObject({
      code: 'MLFLOW_NO_SUCH_VERSION',
      retriable: false,
      message: expect.stringContaining('has no version 9'),
    });
    await expect(
      modelRollback(registry, { model: 'generation_model', version: 5 }).plan(stepContext()),
    ).rejects.toMatchObject({
      code: 'MLFLOW_VERSION_NOT_READY',
      message: expect.stringContaining('is PENDING_REGISTRATION, not READY'),
    });
    expect(() => modelRollback(registry, { model: 'generation_model', version: 'three' })).toThrow(
      /version: expected a version number/,
    );
  });

  it('refuses to apply when someone else moved the champion after the plan', async () => {
    const action = modelRollback(registry, { model: 'generation_model', version: '3' });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    await registry.setAlias('generation_model', 'champion', '1');
    await expect(action.apply(stepContext(), plan)).rejects.toMatchObject({ code: 'STALE_PLAN' });
    expect(mlflow.aliases('generation_model')).toMatchObject({ champion: '1', previous: '3' });
  });

  it('refuses to apply when someone else moved "previous" after the plan, keeping their version', async () => {
    const action = modelRollback(registry, { model: 'generation_model', version: '3' });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    await registry.setAlias('generation_model', 'previous', '1');
    await expect(action.apply(stepContext(), plan)).rejects.toMatchObject({
      code: 'STALE_PLAN',
      message: expect.stringContaining('"previous" is version 1 now, not 3 as planned'),
    });
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '4', previous: '1', challenger: '2' });
  });

  it('does not revert over a move made after the apply, and says what changed', async () => {
    const action = modelRollback(registry, { model: 'generation_model', version: '3' });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    const data = await action.apply(stepContext(), plan);
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    // Someone promotes version 2 afterwards (champion 3 → 2, previous 4 → 3).
    await registry.setAlias('generation_model', 'previous', '3');
    await registry.setAlias('generation_model', 'champion', '2');
    await expect(action.revert?.(stepContext(), applied)).rejects.toMatchObject({
      code: 'STALE_REVERT',
      retriable: false,
      message: expect.stringContaining('"champion" is 2, not 3; "previous" is 3, not 4'),
    });
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '2', previous: '3', challenger: '2' });
    // Only "previous" moved: still refused, nothing written.
    await registry.setAlias('generation_model', 'champion', '3');
    await expect(action.revert?.(stepContext(), applied)).rejects.toMatchObject({
      code: 'STALE_REVERT',
      message: expect.stringContaining('"previous" is 3, not 4'),
    });
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '3', previous: '3', challenger: '2' });
  });

  it('promotes the challenger to champion, keeping the old champion as previous', async () => {
    const action = modelPromote(registry, { model: 'generation_model' });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    expect(plan.summary).toBe('Model generation_model "champion": version 4 → 2, keeping 4 as "previous"');
    await action.apply(stepContext(), plan);
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '2', previous: '4', challenger: '2' });
    await registry.setAlias('generation_model', 'challenger', '1');
    await expect(
      modelPromote(registry, { model: 'generation_model', version: 2 }).plan(stepContext()),
    ).rejects.toMatchObject({
      code: 'MLFLOW_ALIAS_MOVED',
      retriable: false,
      message: expect.stringContaining('"challenger" is version 1 now, not 2 as expected'),
    });
    expect(mlflow.aliases('generation_model')).toEqual({ champion: '2', previous: '4', challenger: '1' });
    await registry.deleteAlias('generation_model', 'challenger');
    await expect(
      modelPromote(registry, { model: 'generation_model' }).plan(stepContext()),
    ).rejects.toMatchObject({
      code: 'MLFLOW_NO_SUCH_ALIAS',
    });
  });
});

describe('modelStageTransition (legacy stages)', () => {
  it('moves version 3 to Production archiving the current one, and reverts both', async () => {
    await registry.transitionStage('generation_model', '4', 'Production', true);
    expect(mlflow.version('generation_model', '3')?.current_stage).toBe('Archived');
    const action = modelStageTransition(registry, {
      model: 'generation_model',
      version: 3,
      stage: 'Production',
    });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    mlflow.clearRequests();
    expect(plan.changes).toEqual([
      {
        target: 'mlflow:127.0.0.1/model/generation_model',
        field: 'versions[3].stage',
        before: 'Archived',
        after: 'Production',
      },
      {
        target: 'mlflow:127.0.0.1/model/generation_model',
        field: 'versions[4].stage',
        before: 'Production',
        after: 'Archived',
      },
    ]);
    const data = await action.apply(stepContext(), plan);
    expect([
      mlflow.version('generation_model', '3')?.current_stage,
      mlflow.version('generation_model', '4')?.current_stage,
    ]).toEqual(['Production', 'Archived']);
    expect(mlflow.requests.filter((r) => r.method === 'POST').map((r) => r.body)).toEqual([
      { name: 'generation_model', version: '3', stage: 'Production', archive_existing_versions: false },
      { name: 'generation_model', version: '4', stage: 'Archived', archive_existing_versions: false },
    ]);
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    expect((await action.verify?.(stepContext(), applied))?.status).toBe('ok');
    await action.revert?.(stepContext(), applied);
    expect([
      mlflow.version('generation_model', '3')?.current_stage,
      mlflow.version('generation_model', '4')?.current_stage,
    ]).toEqual(['Archived', 'Production']);
  });
});

describe('modelStageTransition with several versions in the stage', () => {
  it('plans every version in Production (not only the latest), archives exactly those, and reverts them all', async () => {
    // Versions 1 and 3 both in Production: latest_versions shows only 3.
    await registry.transitionStage('generation_model', '1', 'Production', false);
    expect(
      (await registry.getRegisteredModel('generation_model'))?.latestVersions
        .filter((v) => v.stage === 'Production')
        .map((v) => v.version),
    ).toEqual(['3']);
    const action = modelStageTransition(registry, {
      model: 'generation_model',
      version: 2,
      stage: 'Production',
    });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    expect(plan.changes.map((c) => [c.field, c.before, c.after])).toEqual([
      ['versions[2].stage', 'Archived', 'Production'],
      ['versions[1].stage', 'Production', 'Archived'],
      ['versions[3].stage', 'Production', 'Archived'],
    ]);
    // Version 4 enters Production after the plan: the apply must not archive what the plan did not show.
    await registry.transitionStage('generation_model', '4', 'Production', false);
    const data = await action.apply(stepContext(), plan);
    const stages = () =>
      ['1', '2', '3', '4'].map((v) => mlflow.version('generation_model', v)?.current_stage);
    expect(stages()).toEqual(['Archived', 'Production', 'Archived', 'Production']);
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    await action.revert?.(stepContext(), applied);
    expect(stages()).toEqual(['Production', 'Archived', 'Production', 'Production']);
  });

  it('searches versions with MLflow’s filter and answers an empty search as no versions', async () => {
    mlflow.registerVersion('other_model');
    expect((await registry.searchModelVersions('generation_model')).map((v) => v.version)).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
    ]);
    expect(mlflow.requests.at(-1)).toMatchObject({
      method: 'GET',
      path: '/api/2.0/mlflow/model-versions/search',
      query: { filter: "name='generation_model'" },
      status: 200,
    });
    expect(await registry.searchModelVersions('no_such_model')).toEqual([]);
  });
});

describe('modelVersionTag', () => {
  it('plans, sets, verifies and reverts a version tag with MLflow’s set-tag and delete-tag bodies', async () => {
    const action = modelVersionTag(registry, {
      model: 'generation_model',
      version: 4,
      key: 'rolled_back',
      value: 'rolled back to 3',
    });
    const plan = sealAsEngine(action, await action.plan(stepContext()));
    expect(plan.changes).toEqual([
      {
        target: 'mlflow:127.0.0.1/model/generation_model',
        field: 'versions[4].tags.rolled_back',
        before: null,
        after: 'rolled back to 3',
      },
    ]);
    mlflow.clearRequests();
    const data = await action.apply(stepContext(), plan);
    expect(mlflow.requests[0]).toMatchObject({
      method: 'POST',
      path: '/api/2.0/mlflow/model-versions/set-tag',
      body: { name: 'generation_model', version: '4', key: 'rolled_back', value: 'rolled back to 3' },
      status: 200,
    });
    expect(mlflow.version('generation_model', '4')?.tags).toEqual([
      { key: 'accuracy', value: '0.71' },
      { key: 'rolled_back', value: 'rolled back to 3' },
    ]);
    const applied = { plan, data, appliedAt: new Date().toISOString(), recovered: false };
    expect((await action.verify?.(stepContext(), applied))?.status).toBe('ok');
    expect((await action.plan(stepContext())).changes).toEqual([]);
    await action.revert?.(stepContext(), applied);
    expect(mlflow.version('generation_model', '4')?.tags).toEqual([{ key: 'accuracy', value: '0.71' }]);
    expect(mlflow.requests.at(-1)).toMatchObject({
      method: 'DELETE',
      path: '/api/2.0/mlflow/model-versions/delete-tag',
      status: 200,
    });
    await expect(
      modelVersionTag(registry, { model: 'generation_model', version: 9, key: 'k', value: 'v' }).plan(
        stepContext(),
      ),
    ).rejects.toMatchObject({ code: 'MLFLOW_NO_SUCH_VERSION' });
  });
});

describe('a model rollback through the engine', () => {
  const fx = engineFixture(() => postgresStore(uniqueSchema('ml_test_mlflow')));

  const rollbackRunbook = defineRunbook({
    id: 'model-rollback',
    title: 'Roll back the generation model',
    severity: 'P2',
    input: z.object({ model: z.string(), version: z.string() }),
    async run({ input, step }) {
      const champion = await step.check('champion', modelChampion(registry, { model: input.model }));
      if (champion.data.version === input.version) return step.done('already serving it');
      await step.act('rollback', modelRollback(registry, { model: input.model, version: input.version }));
      return step.done(`rolled back to ${input.version}`);
    },
  });

  it('needs a second person (medium risk), then applies and verifies against the registry', async () => {
    const engine = fx.engine([rollbackRunbook], {
      approvals: { minRisk: 'medium', destructive: true, ttl: '1h' },
    });
    const started = await engine.start(
      'model-rollback',
      { model: 'generation_model', version: '3' },
      { mode: 'execute', actor: 'alice' },
    );
    expect(started.status).toBe('waiting_approval');
    expect(mlflow.aliases('generation_model').champion).toBe('4');
    await engine.approve(started.runId, { actor: 'bob' });
    const done = await engine.resume(started.runId);
    expect(done.status).toBe('succeeded');
    expect(mlflow.aliases('generation_model')).toMatchObject({ champion: '3', previous: '4' });
    const { steps } = await engine.getRun(started.runId);
    expect(steps[1]?.result).toMatchObject({ status: 'applied', verification: { status: 'ok' } });
  });
});
