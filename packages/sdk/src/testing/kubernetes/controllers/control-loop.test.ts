import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isRunbookError } from '../../../core/errors';
import { ObjectStore } from '../object-store';
import { CONFIGMAPS, NAMESPACES } from '../resources';
import { ControlLoop, type LoopEntry } from './control-loop';
import type { Controller } from './controller';

const loops: ControlLoop[] = [];
afterEach(() => {
  for (const loop of loops.splice(0)) loop.stop();
});

function setup(entries: LoopEntry[], log: string[] = []) {
  const store = new ObjectStore();
  store.create(NAMESPACES, { metadata: { name: 'default' } });
  const loop = new ControlLoop(store, entries, { log: (m) => log.push(m) });
  loops.push(loop);
  return { store, loop, log };
}

/** A controller that counts its syncs and asks to run again after `wait` ms (or never). */
function counting(name: string, wait: () => number | undefined = () => undefined) {
  const calls: number[] = [];
  const controller: Controller = {
    name,
    sync(now) {
      calls.push(now);
      return wait();
    },
  };
  return { controller, calls };
}

const activeTimers = () =>
  process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;

describe('control loop', () => {
  it('runs every controller in order on start and once per batch of store changes', async () => {
    const order: string[] = [];
    const a: Controller = { name: 'a', sync: () => void order.push('a') };
    const b: Controller = { name: 'b', sync: () => void order.push('b') };
    const { store, loop } = setup([{ controller: a }, { controller: b }]);
    loop.start();
    expect(order).toEqual(['a', 'b']);
    for (let i = 0; i < 5; i++)
      store.create(CONFIGMAPS, { metadata: { name: `cm-${i}`, namespace: 'default' } });
    await loop.settle(1000);
    expect(order).toEqual(['a', 'b', 'a', 'b']);
  });

  it('settle() waits for a wake-up due within 50 ms but not for later or periodic ones', async () => {
    let readyAt = 0;
    // Asks to run again until 30 ms have passed, like a readiness delay.
    const soon = counting('soon', () => (Date.now() < readyAt ? readyAt - Date.now() : undefined));
    const later = counting('later', () => 500);
    const periodic = counting('metrics', () => 10);
    const { loop } = setup([
      { controller: soon.controller },
      { controller: later.controller },
      { controller: periodic.controller, periodic: true },
    ]);
    const started = Date.now();
    readyAt = started + 30;
    loop.start();
    await loop.settle(1000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(Date.now() - started).toBeLessThan(400);
    expect(soon.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('settle() rejects with a TIMEOUT error naming the busy controller', async () => {
    const busy = counting('kubelet', () => 10);
    const { loop } = setup([{ controller: busy.controller }]);
    loop.start();
    const started = Date.now();
    const error = await loop.settle(150).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
    expect(isRunbookError(error) && error.code).toBe('TIMEOUT');
    expect((error as Error).message).toMatch(
      /did not settle within 150ms: .*kubelet asks to run again in \d+ms/,
    );
    expect(busy.calls.length).toBeGreaterThan(5);
  });

  it('settle() before start() is refused', async () => {
    const { loop } = setup([]);
    await expect(loop.settle(100)).rejects.toThrow(/call start\(\) before settle\(\)/);
  });

  it('keeps running when a controller throws, logging each distinct failure once', async () => {
    let n = 0;
    const broken: Controller = {
      name: 'broken',
      sync() {
        n++;
        throw new Error('boom');
      },
    };
    const after = counting('after');
    const { store, loop, log } = setup([{ controller: broken }, { controller: after.controller }]);
    loop.start();
    store.create(CONFIGMAPS, { metadata: { name: 'x', namespace: 'default' } });
    await new Promise((r) => setTimeout(r, 250));
    expect(after.calls.length).toBeGreaterThanOrEqual(2);
    expect(n).toBeGreaterThanOrEqual(3); // retried after a failure even without changes
    expect(loop.failures.at(-1)).toMatchObject({ controller: 'broken' });
    expect(log).toEqual(['Simulated cluster: the broken controller failed and will be retried: boom']);
  });

  it('backs off controllers that keep writing, and says so once', async () => {
    const store = new ObjectStore();
    store.create(NAMESPACES, { metadata: { name: 'default' } });
    let i = 0;
    // Every sync changes the store, which schedules another pass: a write loop.
    const writer: Controller = {
      name: 'writer',
      sync() {
        store.create(CONFIGMAPS, { metadata: { name: `w-${i++}`, namespace: 'default' } });
        return undefined;
      },
    };
    const log: string[] = [];
    const loop = new ControlLoop(store, [{ controller: writer }], { log: (m) => log.push(m) });
    loops.push(loop);
    loop.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(log.filter((m) => m.includes('slowing down'))).toHaveLength(1);
    // After 100 quick passes it runs about once per 5 ms instead of as fast as it can.
    expect(i).toBeGreaterThan(100);
    expect(i).toBeLessThan(100 + 100 / 4);
  });

  it('stop() clears every timer and pending pass and rejects waiting settle() calls', async () => {
    const before = activeTimers();
    const busy = counting('busy', () => 10);
    const { store, loop } = setup([{ controller: busy.controller }]);
    loop.start();
    store.create(CONFIGMAPS, { metadata: { name: 'x', namespace: 'default' } });
    const waiting = loop.settle(1000);
    expect(activeTimers()).toBeGreaterThan(before);
    loop.stop();
    await expect(waiting).rejects.toThrow(/stopped before it settled/);
    expect(activeTimers()).toBe(before);
    const calls = busy.calls.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(busy.calls.length).toBe(calls);
  });

  it('does not keep a process alive when nobody stops it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'control-loop-'));
    const script = join(dir, 'forgotten.mts');
    writeFileSync(
      script,
      [
        `import { ObjectStore } from ${JSON.stringify(join(import.meta.dirname, '../object-store.ts'))};`,
        `import { ControlLoop } from ${JSON.stringify(join(import.meta.dirname, 'control-loop.ts'))};`,
        'const loop = new ControlLoop(new ObjectStore(), [{ controller: { name: "k", sync: () => 200 } }]);',
        'loop.start();',
        'await loop.settle(1000);',
        'console.log("settled");',
      ].join('\n'),
    );
    const tsx = join(import.meta.dirname, '../../../../node_modules/.bin/tsx');
    const started = Date.now();
    const result = spawnSync(tsx, [script], { encoding: 'utf8', timeout: 8000 });
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('settled');
    expect(result.signal).toBeNull(); // not killed by the timeout: it exited by itself
    expect(result.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(8000);
  });
});
