/**
 * The `login-attack` scenario (runbook 12): a credential-stuffing attack through the backend's login from a few
 * addresses (hundreds of failures a minute against some accounts), one guessed password, reads and an export
 * by that account, and a backdoor file planted in a backend pod. It ends when the runbook contains it: blocked
 * addresses get 403 before the login, a locked account cannot log in, the backdoor file is removed.
 */
import { DEFAULT_BLOCKLIST_KEY } from '@aiwebtest/runbooks/security';
import type { LabParts } from '../lab-parts';
import { podsMatching } from '../platform/platform-status';
import { labPasswordOf } from './backend-guard';

/** Where the attack comes from (documentation ranges, RFC 5737). */
export const ATTACKER_IPS = ['203.0.113.66', '203.0.113.67', '198.51.100.23'] as const;
/** The accounts attacked; the first one's password is guessed. */
export const ATTACKED_USERS = ['grace', 'alice', 'bob'] as const;
/** The account the attacker gets into. */
export const COMPROMISED_USER = ATTACKED_USERS[0];
/** The file the attacker leaves in a backend pod. */
export const BACKDOOR_PATH = '/app/backdoor.py';

/** How long the attack goes on at most when nobody stops it. @default 10 minutes */
const MAX_ATTACK_MS = 10 * 60_000;
/** One failed login per this interval: 600 a minute, six times the manual's threshold. */
const ATTEMPT_EVERY_MS = 100;

/** Starts the attack; `undo` stops it and takes back what it left (the backdoor, the blocks, the locks). */
export async function injectLoginAttack(
  parts: LabParts,
): Promise<{ description: string; undo: () => Promise<void> }> {
  // The attack has been going for half a minute already: 150 failures, enough for the alert at once.
  await parts.pool.query(
    `INSERT INTO audit_logs (user_id, username, action, resource, ip_address, success, details, created_at)
     SELECT u.user_id, u.username, 'login_failed', 'auth', ($1::text[])[1 + i % 3], false,
            jsonb_build_object('user_agent', 'python-requests/2.31'), now() - make_interval(secs => (i % 30)::double precision)
       FROM generate_series(0, 149) AS i
       JOIN users u ON u.username = ($2::text[])[1 + i % 3]`,
    [ATTACKER_IPS, ATTACKED_USERS],
  );

  const login = (ip: string, username: string, password: string) =>
    fetch(`${parts.backend.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-forwarded-for': ip,
        'user-agent': 'python-requests/2.31',
      },
      body: JSON.stringify({ username, password }),
      signal: AbortSignal.timeout(5_000),
    })
      .then((r) => r.status)
      .catch(() => 0);

  // The guessed password, from the first address: a successful login, then what the account read and exported.
  const [attacker] = ATTACKER_IPS;
  const status = await login(attacker, COMPROMISED_USER, labPasswordOf(COMPROMISED_USER));
  if (status !== 200)
    throw new Error(`the attacker's login as ${COMPROMISED_USER} got HTTP ${status}, not 200`);
  await parts.pool.query(
    `INSERT INTO audit_logs (user_id, username, action, resource, ip_address, success, details)
     SELECT user_id, username, a.action, a.resource, $2, true, '{}'::jsonb
       FROM users, (VALUES ('read', 'projects/1'), ('read', 'test_cases/project/1'), ('export', 'test_cases/project/1')) AS a(action, resource)
      WHERE username = $1`,
    [COMPROMISED_USER, attacker],
  );

  const backend = podsMatching(parts.simulator.store, parts.namespace, { app: 'backend' }).map(
    (p) => p.metadata.name,
  );
  const [target] = backend;
  if (!target) throw new Error(`no backend pod in ${parts.namespace} to plant the backdoor in`);
  const old = new Date(Date.now() - 40 * 86_400_000);
  for (const pod of backend) {
    const files = parts.simulator.files(parts.namespace, pod);
    for (const path of ['/app/main.py', '/app/requirements.txt', '/app/agents/__init__.py'])
      files.write(path, { mtime: old, size: 2_048 });
  }
  parts.simulator.files(parts.namespace, target).write(BACKDOOR_PATH, { mtime: new Date(), size: 1_337 });

  let attempt = 0;
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight) return; // a slow backend is not flooded by a pile-up of requests
    inFlight = true;
    const i = attempt++;
    const ip = ATTACKER_IPS[i % ATTACKER_IPS.length] as string;
    const user = ATTACKED_USERS[(i >> 1) % ATTACKED_USERS.length] as string;
    void login(ip, user, `guess-${i}`).finally(() => {
      inFlight = false;
    });
  }, ATTEMPT_EVERY_MS);
  timer.unref();
  const ends = setTimeout(() => clearInterval(timer), MAX_ATTACK_MS);
  ends.unref();

  return {
    description: `credential stuffing from ${ATTACKER_IPS.join(', ')} against ${ATTACKED_USERS.join(', ')} (${60_000 / ATTEMPT_EVERY_MS}/min through the login); ${COMPROMISED_USER}'s password guessed, 2 reads and an export; ${BACKDOOR_PATH} planted in pod ${target}`,
    async undo() {
      clearInterval(timer);
      clearTimeout(ends);
      for (const pod of backend) parts.simulator.files(parts.namespace, pod).remove(BACKDOOR_PATH);
      await parts.redis.zrem(DEFAULT_BLOCKLIST_KEY, ...ATTACKER_IPS);
      await parts.pool.query(
        `UPDATE users SET status = 'active', locked_reason = NULL WHERE username = ANY($1::text[]) AND status = 'locked'`,
        [ATTACKED_USERS],
      );
    },
  };
}
