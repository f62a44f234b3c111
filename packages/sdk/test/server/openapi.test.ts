import { describe, expect, it } from 'vitest';
import { addBoomRoute, serverFixture, TOKENS } from './server-fixture';

// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is read loosely
type Any = any;

describe('OpenAPI document', () => {
  const f = serverFixture({ setup: addBoomRoute });

  it('lists every route with its methods', async () => {
    const { status, body } = await f.call('GET', '/api/v1/openapi.json', { token: TOKENS.vera });
    expect(status).toBe(200);
    const doc = body as Any;
    expect(doc.openapi).toBe('3.1.0');
    const routes = Object.entries(doc.paths as Record<string, object>).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'GET /healthz',
        'GET /metrics',
        'GET /readyz',
        'GET /api/v1/openapi.json',
        'GET /api/v1/runbooks',
        'GET /api/v1/runbooks/{id}',
        'POST /api/v1/runbooks/{id}/diagnose',
        'POST /api/v1/runs',
        'GET /api/v1/runs',
        'GET /api/v1/runs/{id}',
        'GET /api/v1/runs/{id}/events',
        'GET /api/v1/runs/{id}/fixture',
        'POST /api/v1/runs/{id}/approve',
        'POST /api/v1/runs/{id}/reject',
        'POST /api/v1/runs/{id}/cancel',
        'POST /api/v1/approvals/{runId}/approve',
        'POST /api/v1/approvals/{runId}/reject',
        'GET /api/v1/audit',
        'GET /api/v1/audit/verify',
        'GET /api/v1/alerts',
        'POST /api/v1/alerts/alertmanager',
      ].sort(),
    );
    expect(doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
  });

  it('describes request bodies, queries, responses and each runbook input', async () => {
    const doc = (await f.call('GET', '/api/v1/openapi.json', { token: TOKENS.vera })).body as Any;
    const startRun = doc.paths['/api/v1/runs'].post;
    const bodySchema = startRun.requestBody.content['application/json'].schema;
    expect(Object.keys(bodySchema.properties).sort()).toEqual([
      'context',
      'idempotencyKey',
      'input',
      'mode',
      'runbookId',
    ]);
    expect(bodySchema.properties.idempotencyKey).toMatchObject({
      type: 'string',
      minLength: 1,
      maxLength: 200,
    });
    expect(Object.keys(bodySchema.properties.context.properties)).toEqual(
      expect.arrayContaining(['dashboard', 'panel', 'alert', 'timeRange', 'labels', 'variables', 'source']),
    );
    expect(bodySchema.properties.context.additionalProperties).toBe(false);
    expect(bodySchema.properties.mode.enum).toEqual(['diagnose', 'plan', 'execute']);
    expect(Object.keys(startRun.responses).sort()).toEqual([
      '200',
      '202',
      '400',
      '401',
      '403',
      '404',
      '409',
      '413',
      '429',
    ]);
    // Every /api/v1 route documents the rate limit's answer with the error body.
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Any>>)) {
      if (!path.startsWith('/api/v1/') || path === '/api/v1/openapi.json') continue;
      for (const [method, operation] of Object.entries(item)) {
        const tooMany = operation.responses['429'];
        expect(tooMany, `${method} ${path}`).toBeDefined();
        expect(tooMany.description).toContain('RATE_LIMITED');
        expect(
          Object.keys(tooMany.content['application/json'].schema.properties.error.properties).sort(),
        ).toEqual(['code', 'details', 'message']);
      }
    }

    const listRuns = doc.paths['/api/v1/runs'].get;
    expect(listRuns.parameters.map((p: Any) => `${p.in}:${p.name}`).sort()).toEqual([
      'query:cursor',
      'query:limit',
      'query:runbookId',
      'query:status',
    ]);
    const runDetail = doc.paths['/api/v1/runs/{id}'].get.responses['200'].content['application/json'].schema;
    expect(Object.keys(runDetail.properties).sort()).toEqual([
      'approvals',
      'findings',
      'plans',
      'run',
      'steps',
    ]);
    expect(Object.keys(runDetail.properties.run.properties)).toEqual(
      expect.arrayContaining(['context', 'idempotencyKey', 'approval']),
    );

    const events = doc.paths['/api/v1/runs/{id}/events'].get;
    expect(Object.keys(events.responses['200'].content).sort()).toEqual([
      'application/json',
      'text/event-stream',
    ]);
    expect(Object.keys(events.responses['200'].content['application/json'].schema.properties).sort()).toEqual(
      ['done', 'events', 'nextAfter', 'status'],
    );
    expect(events.parameters.map((p: Any) => `${p.in}:${p.name}`).sort()).toEqual([
      'header:last-event-id',
      'path:id',
      'query:after',
      'query:format',
      'query:limit',
    ]);
    const audit = doc.paths['/api/v1/audit'].get;
    expect(audit.parameters.map((p: Any) => `${p.in}:${p.name}`).sort()).toEqual([
      'query:after',
      'query:limit',
      'query:runId',
    ]);

    expect(doc.components.schemas['scale-check.input']).toMatchObject({
      type: 'object',
      properties: { namespace: { type: 'string' }, replicas: { type: 'integer' } },
      required: ['namespace'],
    });
    expect(doc.components.schemas['fix-low.input'].required.sort()).toEqual(['key', 'value']);
  });
});
