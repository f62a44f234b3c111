import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify, stripVTControlCharacters } from 'node:util';
import { DEPLOYMENTS } from '@aiwebtest/runbooks/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scenario } from '../../src/lab/scenarios';
import { startTestLab, type TestLab } from '../support/test-lab';
import { until } from '../support/until';

// The proof: a newcomer who follows only AUTHORING.md writes, tests and runs a new runbook against
// the lab. This test runs the guide's shell blocks ("five-minutes", "against-the-lab") line by line, as
// written, in a fresh folder of this package (whose node_modules has what `init` says to install). Two
// lines stand for what a person does by hand: the kubeconfig path points at this test's lab (the guide's
// points at `pnpm lab up`'s), and `pnpm lab chaos <scenario>` injects that scenario into this lab.

const run = promisify(execFile);
const GUIDE = fileURLToPath(new URL('../../../sdk/AUTHORING.md', import.meta.url));
const HERE = fileURLToPath(new URL('../..', import.meta.url));

/** The code of the guide's `ts` block that starts with `// <name>`, without that line. */
function tsBlock(name: string): string {
  const guide = readFileSync(GUIDE, 'utf8');
  const block = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.startsWith(`// ${name}\n`));
  if (!block) throw new Error(`AUTHORING.md has no ts block "// ${name}"`);
  return block.slice(`// ${name}\n`.length).trimEnd();
}

/** The lines of the guide's `sh` block that starts with `# <name>`, comments and continuation joined. */
function shellBlock(name: string): string[] {
  const guide = readFileSync(GUIDE, 'utf8');
  const block = [...guide.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.startsWith(`# ${name}\n`));
  if (!block) throw new Error(`AUTHORING.md has no sh block "# ${name}"`);
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.replace(/\s+#\s.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('a newcomer following AUTHORING.md', () => {
  let lab: TestLab;
  const dir = join(HERE, '.runbook', `newcomer-${process.pid}`);
  const env: Record<string, string> = {};

  beforeAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    lab = await startTestLab();
  }, 90_000);
  afterAll(async () => {
    await lab?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs one line of the guide in the newcomer's folder, with the variables exported so far. */
  async function shell(line: string) {
    try {
      const { stdout } = await run('bash', ['-c', line], {
        cwd: dir,
        env: { ...process.env, ...env },
        timeout: 120_000,
      });
      return { code: 0, stdout };
    } catch (e) {
      const failed = e as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
    }
  }

  it('scaffolds a runbook, makes it its own and passes its test', async () => {
    const [init, ...more] = shellBlock('five-minutes');
    expect(more).toEqual([]);
    expect(init).toBe('npx runbook init checkout-api');
    const scaffolded = await shell(init ?? '');
    expect(scaffolded, scaffolded.stdout).toMatchObject({ code: 0 });
    expect(scaffolded.stdout).not.toContain('Install the packages'); // nothing missing here

    // "Add these lines … just before `const restart = await step.act(`": the guide's snippet, as shown.
    const module = join(dir, 'runbooks/checkout-api.ts');
    const source = readFileSync(module, 'utf8');
    const anchor = source.indexOf('const restart = await step.act(');
    expect(anchor).toBeGreaterThan(0);
    const lineStart = source.lastIndexOf('\n', anchor) + 1;
    const indent = source.slice(lineStart, anchor);
    const snippet = tsBlock('make-it-yours.ts')
      .split('\n')
      .map((line) => (line === '' ? line : `${indent}${line}`))
      .join('\n');
    writeFileSync(module, `${source.slice(0, lineStart)}${snippet}\n${source.slice(lineStart)}`);

    const [test, ...rest] = shellBlock('test-it');
    expect(rest).toEqual([]);
    const tested = await shell(test ?? '');
    expect(tested, tested.stdout).toMatchObject({ code: 0 });
    expect(stripVTControlCharacters(tested.stdout)).toMatch(/Tests\s+3 passed \(3\)/);
  }, 120_000);

  it('diagnoses the lab, then restarts the agent the chaos broke', async () => {
    const lines = shellBlock('against-the-lab');
    const restartedAt = () =>
      (
        lab.simulator.store.get(DEPLOYMENTS, lab.namespace, 'requirements-agent').spec as {
          template: { metadata: { annotations?: Record<string, string> } };
        }
      ).template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'];
    const before = restartedAt();
    const outputs: string[] = [];
    for (const line of lines) {
      const exported = /^export (.*)$/.exec(line);
      const chaos = /^pnpm lab chaos (\S+)$/.exec(line);
      if (exported) {
        for (const [, key, value] of (exported[1] ?? '').matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
          if (!key || value === undefined) continue;
          env[key] = key === 'KUBECONFIG' ? lab.kubeconfigPath : value;
        }
      } else if (chaos) {
        await scenario(chaos[1] ?? '').inject(lab);
        const ready = () =>
          (
            lab.simulator.store.get(DEPLOYMENTS, lab.namespace, 'requirements-agent').status as {
              readyReplicas?: number;
            }
          ).readyReplicas ?? 0;
        await until('the agent down', () => ready() === 0, 30_000);
      } else {
        const result = await shell(line);
        expect(result, `${line}\n${result.stdout}`).toMatchObject({ code: 0 });
        outputs.push(result.stdout);
      }
    }
    expect(env).toMatchObject({
      RUNBOOK_KUBE_CONTEXT: 'aiwebtest-lab',
      RUNBOOK_KUBE_NAMESPACES: 'aiwebtest',
    });
    expect(outputs).toHaveLength(2);
    // diagnose: the lab is healthy, so the runbook ends before its evidence and restart steps; run: the
    // crash-looping agent's logs and events were read (the newcomer's steps), then it was restarted.
    const step = (name: string, kind: string) => new RegExp(`^\\s+\\S\\s+${name}\\s+${kind}\\b`, 'm');
    expect(outputs[0]).toMatch(/checkout-api \(diagnose\): succeeded/);
    expect(outputs[0]).not.toMatch(step('events', 'check'));
    expect(outputs[1]).toMatch(/checkout-api \(execute\): succeeded/);
    for (const [name, kind] of [
      ['logs', 'check'],
      ['events', 'check'],
      ['restart', 'act'],
    ]) {
      expect(outputs[1], outputs[1]).toMatch(step(name ?? '', kind ?? ''));
    }
    expect(restartedAt()).toBeDefined();
    expect(restartedAt()).not.toBe(before);
  }, 120_000);
});
