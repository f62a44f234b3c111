import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DrillLab, startDrillLab } from '../support/drill-lab';

// End to end: the incident injected for real, the manual's alert fired by a real Prometheus
// scraping the lab, delivered by a real Alertmanager to the runbook service, which runs the routed runbook
// (a second identity approves where policy asks); the lab healthy again; the audit chain intact.
// A lab per incident here: each runbook leaves the backend mitigated (on the fallback, queued, cached),
// which is right in production and would hide the next incident's symptom.
let lab: DrillLab;
beforeEach(async () => {
  lab = await startDrillLab();
}, 180_000);
afterEach(async () => {
  await lab?.close();
});

/** The backend answers a generation request (from whichever provider the runbook left it on). */
async function generates(): Promise<boolean> {
  const response = await fetch(`${lab.up.lab.env.backendUrl}/api/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Write a login test', agent: 'generation_agent' }),
    signal: AbortSignal.timeout(20_000),
  });
  return response.ok;
}

describe('incidents: the LLM API (runbooks 6–8)', () => {
  it('openrouter-outage → OpenRouterDown → openrouter-outage switches to Ollama', async () => {
    const r = await lab.drill.drill('openrouter-outage', { healthChecks: ['database'], verify: generates });
    expect(r.alertname).toBe('OpenRouterDown');
    expect(r.run.run.status).toBe('succeeded');
    expect(r.run.findings.map((f) => f.summary).join('\n')).toMatch(/openrouter.*(open|down|unreachable)/i);
    const health = (await (await fetch(`${lab.up.lab.env.backendUrl}/api/v1/health`)).json()) as {
      provider_current: string;
    };
    expect(health.provider_current).toBe('ollama');
    expect(r.auditOk).toBe(true);

    // OpenRouter is back: the same runbook switches back (its breaker close needs a second person).
    await lab.up.control.healAll();
    const back = await lab.drill.execute('openrouter-outage', { phase: 'recover' });
    expect(back.run.status).toBe('succeeded');
    const after = (await (await fetch(`${lab.up.lab.env.backendUrl}/api/v1/health`)).json()) as {
      provider_current: string;
    };
    expect(after.provider_current).toBe('openrouter');
  }, 420_000);

  it('openrouter-rate-limit → OpenRouterRateLimited → openrouter-rate-limit queues requests', async () => {
    const r = await lab.drill.drill('openrouter-rate-limit', {
      healthChecks: ['database'],
      verify: queueEnabled,
    });
    expect(r.alertname).toBe('OpenRouterRateLimited');
    expect(r.run.findings.map((f) => f.summary).join('\n')).toMatch(/rate.limit|429/i);
    // The queue is on at the manual's 50 a minute. OpenRouter keeps answering 429 for the whole incident (the
    // lab's provider-side incident lasts 10 minutes), so the run ends with the manual's escalation for a
    // persistent limit rather than a clean success; requests wait in the queue instead of failing.
    expect(['succeeded', 'escalated']).toContain(r.run.run.status);
    if (r.run.run.status === 'escalated')
      expect(JSON.stringify(r.run.run)).toMatch(/persistent rate limiting|upgrade the OpenRouter API plan/i);
    expect(r.auditOk).toBe(true);
  }, 300_000);

  it('api-latency → ApiHighLatency → api-high-latency turns on the response cache', async () => {
    const r = await lab.drill.drill('api-latency', { healthChecks: ['database'], verify: cacheEnabled });
    expect(r.alertname).toBe('ApiHighLatency');
    expect(r.run.run.status).toBe('succeeded');
    expect(r.run.findings.map((f) => f.summary).join('\n')).toMatch(/openrouter/i);
    expect(r.auditOk).toBe(true);
  }, 300_000);
});

async function backendConfig(): Promise<Record<string, unknown>> {
  const health = (await (await fetch(`${lab.up.lab.env.backendUrl}/api/v1/health`)).json()) as {
    config: Record<string, unknown>;
  };
  return health.config;
}
const queueEnabled = async () => (await backendConfig()).openrouter_queue_enabled === true;
const cacheEnabled = async () => (await backendConfig()).openrouter_cache_enabled === true;
