import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readServiceConfig } from '../../src/server/service-config';
import { cli } from '../cli/harness';
import { expectDocsShowTested } from '../support/docs-drift';
import { workerBacklog } from './worker-backlog';

// AUTHORING.md cannot rot: every `ts` sample is a region of a file here (compiled by the type check, run by
// worker-backlog.test.ts), its YAML is a valid service config for its runbook, and every `runbook …` command
// it shows uses only commands and options the CLI has.

const GUIDE = new URL('../../AUTHORING.md', import.meta.url);
const guide = readFileSync(GUIDE, 'utf8');
const SAMPLES: Record<string, string> = {
  'make-it-yours.ts': './make-it-yours.ts',
  'queue-depth.ts': './queue-primitives.ts',
  'pause-intake.ts': './queue-primitives.ts',
  'worker-backlog.ts': './worker-backlog.ts',
  'worker-backlog.test.ts': './worker-backlog.test.ts',
  'backtest.test.ts': './worker-backlog.test.ts',
};
const blocks = (lang: string) =>
  [...guide.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1] ?? '');

describe('AUTHORING.md', () => {
  it('shows only tested code: each ts sample is the region of a test file', () => {
    const names = blocks('ts').map((b) => /^\/\/ (\S+)\n/.exec(b)?.[1]);
    expect(names.sort()).toEqual(Object.keys(SAMPLES).sort());
    for (const [name, file] of Object.entries(SAMPLES))
      expectDocsShowTested(GUIDE, new URL(file, import.meta.url), name);
  });

  it('its service config is valid, and routes an alert to input the runbook accepts', () => {
    const [yaml] = blocks('yaml');
    expect(yaml).toMatch(/^# service\.yaml\n/);
    const dir = mkdtempSync(join(tmpdir(), 'authoring-'));
    try {
      writeFileSync(join(dir, 'service.yaml'), yaml ?? '');
      const config = readServiceConfig(join(dir, 'service.yaml'));
      const route = config.alerts?.routes[0];
      expect(route?.runbook).toBe('worker-backlog');
      const labels: Record<string, string> = { namespace: 'shop', queue: 'orders' };
      const input = Object.fromEntries(
        Object.entries(route?.input ?? {}).map(([k, v]) => [
          k,
          String(v).replace(/\{\{ labels\.(\w+) \}\}/, (_, l) => labels[l] ?? ''),
        ]),
      );
      const runbook = workerBacklog(() => {
        throw new Error('not connected in this test');
      });
      expect(runbook.input.safeParse(input).success).toBe(true);
      expect(runbook.triggers).toEqual([{ kind: 'alert', match: route?.match }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every runbook command it shows exists with the options it uses', async () => {
    const commands = blocks('sh')
      .flatMap((b) => b.split('\n'))
      .map((line) => line.replace(/#.*$/, '').trim())
      .map((line) => /(?:^|\s)runbook\s+(.*)$/.exec(line)?.[1])
      .filter((rest): rest is string => rest !== undefined);
    expect(commands.length).toBeGreaterThanOrEqual(8);
    for (const rest of commands) {
      const words = rest.split(/\s+/);
      const name = words[0] ?? '';
      const help = await cli([name, '--help']);
      expect(help.code, `runbook ${name}`).toBe(0);
      for (const option of words.filter((w) => w.startsWith('-'))) {
        expect(help.stdout, `runbook ${rest}`).toContain(option.split('=')[0]);
      }
    }
  });
});
