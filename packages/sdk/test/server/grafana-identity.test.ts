import { request as httpRequest } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/server/identity';
import { fixRunbook } from '../support/runbooks';
import { serverFixture } from './server-fixture';

const APP_TOKEN = 'grafana-app-token-for-duplicates';
const USER = { UserID: 7, Login: 'grace', OrgID: 1, OrgRole: 'Editor' };
const OTHER = { UserID: 8, Login: 'mallory', OrgID: 1, OrgRole: 'Admin' };

/**
 * GET /api/v1/runbooks over a raw HTTP/1.1 request, so that `X-Grafana-Context` can be sent on several
 * header lines (fetch would join them into one).
 */
function get(port: number, contexts: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/api/v1/runbooks',
        method: 'GET',
        headers: { authorization: `Bearer ${APP_TOKEN}`, 'x-grafana-context': contexts },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('X-Grafana-Context sent more than once', () => {
  const service = serverFixture({
    schema: 'gfdup',
    runbooks: (world) => [fixRunbook(world, 'fix-low')],
    tokens: [{ name: 'grafana-app', sha256: hashToken(APP_TOKEN), role: 'admin', grafana: true }],
  });
  let port = 0;
  beforeAll(() => {
    port = service.port;
  });

  it('accepts the header sent once (the same raw request, one line)', async () => {
    const reply = await get(port, [JSON.stringify(USER)]);
    expect(reply.status).toBe(200);
  });

  it('refuses two header lines with 401 INVALID_GRAFANA_CONTEXT "sent more than once", not "not valid JSON"', async () => {
    const reply = await get(port, [JSON.stringify(USER), JSON.stringify(OTHER)]);
    expect(reply.status).toBe(401);
    const body = JSON.parse(reply.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('INVALID_GRAFANA_CONTEXT');
    expect(body.error.message).toContain('x-grafana-context was sent more than once');
    expect(body.error.message).not.toContain('not valid JSON');
    // Neither user is named: the refusal repeats nothing of the headers.
    expect(reply.body).not.toContain('grace');
    expect(reply.body).not.toContain('mallory');
  });

  it('refuses two identical header lines too (even the same user twice is not one header)', async () => {
    const reply = await get(port, [JSON.stringify(USER), JSON.stringify(USER)]);
    expect(reply.status).toBe(401);
    expect(reply.body).toContain('sent more than once');
  });
});
