import { z } from 'zod';
import { finding } from '../../src/core/finding';
import type { Json } from '../../src/core/json';
import type { Change } from '../../src/core/plan';
import { resourceRef } from '../../src/core/resource';
import { defineRunbook } from '../../src/core/runbook';
import { type Action, defineAction, defineCheck } from '../../src/core/step';

/**
 * An in-memory "world" of named values that test actions change, counting every apply and revert so
 * tests can assert real effects (and that nothing was applied twice).
 */
export class World {
  values = new Map<string, Json>();
  applies: string[] = [];
  reverts: string[] = [];

  get(key: string): Json {
    return this.values.get(key) ?? null;
  }
}

/** An action that sets `key` to `value` in the world; plans nothing when it already has that value. */
export function setValue(
  world: World,
  key: string,
  value: Json,
  options: Partial<Pick<Action, 'risk' | 'destructive' | 'expiresAfter' | 'budget'>> & {
    kind?: string;
    verify?: (world: World) => 'ok' | 'fail';
    failApply?: () => Error | undefined;
    revertable?: boolean;
  } = {},
) {
  const target = resourceRef('test', ...key.split('/'));
  return defineAction<{ key: string; value: Json }, { previous: Json }>({
    kind: options.kind ?? 'test.set',
    target,
    risk: options.risk ?? 'low',
    destructive: options.destructive ?? false,
    ...(options.expiresAfter !== undefined ? { expiresAfter: options.expiresAfter } : {}),
    ...(options.budget ? { budget: options.budget } : {}),
    async plan() {
      const before = world.get(key);
      const changes: Change[] = before === value ? [] : [{ target, field: 'value', before, after: value }];
      return { summary: `set ${key} to ${JSON.stringify(value)}`, changes, params: { key, value } };
    },
    async apply(_ctx, plan) {
      const error = options.failApply?.();
      if (error) throw error;
      const previous = world.get(plan.params.key);
      world.values.set(plan.params.key, plan.params.value);
      world.applies.push(key);
      return { previous };
    },
    ...(options.verify
      ? { verify: async () => finding(options.verify?.(world) ?? 'ok', `verified ${key}`, null) }
      : {}),
    ...(options.revertable === false
      ? {}
      : {
          async revert(_ctx, applied) {
            const before = applied.plan.changes[0]?.before ?? null;
            if (before === null) world.values.delete(key);
            else world.values.set(key, before);
            world.reverts.push(key);
          },
        }),
  });
}

/** A check that reports whether `key` has `expected`. */
export function valueIs(world: World, key: string, expected: Json) {
  return defineCheck({
    kind: 'test.value',
    async run() {
      const actual = world.get(key);
      return finding(actual === expected ? 'ok' : 'fail', `${key} is ${JSON.stringify(actual)}`, { actual }, [
        { kind: 'table', title: 'value', columns: ['key', 'value'], rows: [[key, JSON.stringify(actual)]] },
      ]);
    },
  });
}

/** A runbook that checks `key` and sets it to `value` when it differs; options shape the action. */
export function fixRunbook(world: World, id: string, options: Parameters<typeof setValue>[3] = {}) {
  return defineRunbook({
    id,
    title: `Fix ${id}`,
    severity: 'P2',
    input: z.object({ key: z.string().min(1), value: z.string() }),
    async run({ input, step }) {
      const current = await step.check('inspect', valueIs(world, input.key, input.value));
      if (current.status === 'ok') return step.done('already fine');
      const result = await step.act('fix', setValue(world, input.key, input.value, options));
      return step.done(`fix ${result.status}`);
    },
  });
}
