import type { BackendHealthBody } from '../../src/aiwebtest/platform-checks';

/** The lab backend's `/api/v1/health` answer, read as a test's observer (not through the runbook's check). */
export async function readBackendHealth(backendUrl: string): Promise<BackendHealthBody> {
  const response = await fetch(`${backendUrl}/api/v1/health`);
  return (await response.json()) as BackendHealthBody;
}

/** What `/api/v1/generate` answered; the fields the tests look at. */
export interface GenerateAnswer {
  status: number;
  cached: boolean | null;
  provider: string | null;
}

/** One request to `/api/v1/generate` as the agent `agent` makes it: traffic through the real backend. */
export async function generateThrough(
  backendUrl: string,
  prompt: string,
  agent = 'generation_agent',
): Promise<GenerateAnswer> {
  const response = await fetch(`${backendUrl}/api/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, agent }),
  });
  // An error answer may not be JSON; the status says enough then.
  const body = (await response.json().catch(() => ({}))) as { cached?: boolean; provider?: string };
  return { status: response.status, cached: body.cached ?? null, provider: body.provider ?? null };
}
