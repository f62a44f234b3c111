import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../core/duration';
import { finding } from '../core/finding';
import { parseOptions } from '../core/parse-options';
import type { Change } from '../core/plan';
import { type Action, defineAction } from '../core/step';
import { listSome, plural } from '../core/wording';
import type { RedisInstance } from '../redis/connection';
import { DEFAULT_BLOCKLIST_KEY, IpOrCidr, isWideBlock } from './ip-blocklist';

/** Options of {@link blockIps}. */
export const BlockIpsOptions = z.object({
  /** Addresses or CIDR blocks to block; at most a /16 (IPv4) or /48 (IPv6) each. */
  ips: z
    .array(IpOrCidr)
    .min(1, 'give at least one address to block')
    .max(10_000)
    .transform((ips) => [...new Set(ips)]),
  /** How long the block lasts: the entries end then, and the engine reverts the action then (`expiresAfter`). @default "1h" */
  duration: Duration.default('1h'),
  /** The blocklist's key (what services' `ipBlocklist` reads). @default "aiwebtest:security:ip-blocklist" */
  key: z.string().min(1).default(DEFAULT_BLOCKLIST_KEY),
});
export type BlockIpsOptions = z.output<typeof BlockIpsOptions>;
export type BlockIpsOptionsInput = z.input<typeof BlockIpsOptions>;

/** One block as planned. */
export type PlannedBlock = {
  block: string;
  /** When an existing block of it ended (epoch ms), `null` when it was not blocked. */
  previousUntil: number | null;
};

/** What a block plan fixes. */
export type BlockIpsParams = { key: string; blocks: PlannedBlock[]; durationMs: number };

// Drops ended blocks, adds or extends ours (GT: never shortens a longer block), and sets the set's TTL to the
// end of its longest block, so the key disappears on its own after the last one and never before it.
const APPLY = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[i]) end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - tonumber(ARGV[1])))
return #ARGV - 2`;

// Undoes only our entries: a member whose end is still ours goes back to its previous end (or away).
const REVERT = `
local n = 0
for i = 3, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[2]) then
    if ARGV[i + 1] ~= '' and tonumber(ARGV[i + 1]) > tonumber(ARGV[1]) then
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    else
      redis.call('ZREM', KEYS[1], ARGV[i])
    end
    n = n + 1
  end
end
return n`;

const KIND = 'security.block-ips';

/**
 * Runbook 12's "block malicious IP addresses", as an entry per address or CIDR block in a Redis sorted set that
 * services enforce with `ipBlocklist` / `blocklistHook` (403), instead of an `iptables` line on one WAF pod.
 *
 * - **plan** reads each entry: `blocklist[203.0.113.7]: null → {for: "1h"}` (or the end of an existing block).
 * - **apply** adds them with their end (now + duration); an existing longer block is kept.
 * - **verify** reads them back: each must be blocked until at least the end written.
 * - **revert** (run by the engine when `duration` passes, `expiresAfter`) removes only the entries it added,
 *   restores the earlier end of those it extended, and leaves entries someone changed since alone.
 *
 * Risk `medium` (a wrong address locks a user out), `high` when a block is wider than a /24 (IPv4) or a /64
 * (IPv6): a wrong range locks many out, so a second person approves it. Blocks wider than a /16 or /48 are
 * refused. Not destructive.
 */
export function blockIps(
  redis: RedisInstance,
  options: BlockIpsOptionsInput,
): Action<BlockIpsParams, { until: number }> {
  const o = parseOptions(KIND, BlockIpsOptions, options);
  const durationMs = toMillis(o.duration);
  const target = redis.ref(...o.key.split('/'));
  const what = listSome(o.ips);
  return defineAction<BlockIpsParams, { until: number }>({
    kind: KIND,
    target,
    risk: o.ips.some(isWideBlock) ? 'high' : 'medium',
    destructive: false,
    description: `Block ${what} for ${formatMillis(durationMs)}`,
    expiresAfter: durationMs,

    async plan(ctx) {
      const scores = await redis.run(
        `read blocklist ${o.key}`,
        (c) => c.zmscore(o.key, ...o.ips),
        ctx.signal,
      );
      const now = Date.now();
      const blocks: PlannedBlock[] = o.ips.map((block, i) => {
        const score = scores[i];
        const until = score === null || score === undefined ? null : Number(score);
        return { block, previousUntil: until !== null && until > now ? until : null };
      });
      const changes: Change[] = blocks.map((b) => ({
        target,
        field: `blocklist[${b.block}]`,
        before: b.previousUntil === null ? null : { until: new Date(b.previousUntil).toISOString() },
        after: { for: formatMillis(durationMs) },
      }));
      return {
        summary: `Block ${plural(blocks.length, 'address', 'addresses')} (${what}) for ${formatMillis(durationMs)} in ${o.key}`,
        changes,
        params: { key: o.key, blocks, durationMs },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      const now = Date.now();
      const until = now + p.durationMs;
      await redis.run(
        `add to blocklist ${p.key}`,
        (c) => c.eval(APPLY, 1, p.key, String(now), String(until), ...p.blocks.map((b) => b.block)),
        ctx.signal,
      );
      ctx.log(`blocked ${p.blocks.length} address(es) until ${new Date(until).toISOString()}`);
      return { until };
    },

    async verify(ctx, applied) {
      const p = applied.plan.params;
      const scores = await redis.run(
        `read blocklist ${p.key}`,
        (c) => c.zmscore(p.key, ...p.blocks.map((b) => b.block)),
        ctx.signal,
      );
      const until = applied.data?.until ?? Date.now();
      const missing = p.blocks
        .filter((_, i) => scores[i] === null || Number(scores[i]) < until)
        .map((b) => b.block);
      return missing.length === 0
        ? finding(
            'ok',
            `${plural(p.blocks.length, 'address', 'addresses')} blocked until ${new Date(until).toISOString()}`,
            { missing },
          )
        : finding('fail', `Not blocked: ${listSome(missing)}`, { missing });
    },

    async revert(ctx, applied) {
      const p = applied.plan.params;
      // After a crash the end written is unknown: nothing can be told apart from others' entries, so nothing is removed.
      if (!applied.data) {
        ctx.log(`the block's end was not recorded; leaving ${p.key} as it is (entries end on their own)`);
        return;
      }
      const args = p.blocks.flatMap((b) => [
        b.block,
        b.previousUntil === null ? '' : String(b.previousUntil),
      ]);
      const undone = await redis.run(
        `remove from blocklist ${p.key}`,
        (c) => c.eval(REVERT, 1, p.key, String(Date.now()), String(applied.data?.until), ...args),
        ctx.signal,
      );
      ctx.log(`unblocked ${Number(undone)} of ${p.blocks.length} address(es)`);
    },
  });
}
