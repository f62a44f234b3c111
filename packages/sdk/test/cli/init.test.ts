import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ExitCode } from '../../src/cli/run-cli';
import { scaffoldNames } from '../../src/cli/scaffold/names';
import { writeAllOrNothing } from '../../src/cli/scaffold/write-files';
import { InvalidStateError } from '../../src/core/errors';
import { defineRunbook, isRunbook } from '../../src/index';
import { cli, tempDir } from './harness';

const sdk = fileURLToPath(new URL('../..', import.meta.url));

/** The text `runbook init checkout-latency` prints in a directory outside any project. */
const NEWCOMER_TEXT = `Created the runbook "checkout-latency":
  runbooks/checkout-latency.ts       the runbook: checks a Deployment and its pods, restarts it when they fail
  runbooks/checkout-latency.test.ts  its tests, against an in-process Kubernetes simulator

Next steps:
  1. Install the packages it imports (missing here: @aiwebtest/runbooks, zod, @kubernetes/client-node, vitest):
     npm i @aiwebtest/runbooks zod @kubernetes/client-node
     npm i -D vitest
  2. Run its tests (no cluster needed):
     npx vitest run runbooks/checkout-latency.test.ts
  3. Diagnose a Deployment in your cluster (checks only, changes nothing); fill in the <…>:
     KUBECONFIG=~/.kube/config RUNBOOK_KUBE_CONTEXT=<context> RUNBOOK_KUBE_NAMESPACES=<namespace> \\
       npx runbook diagnose checkout-latency --runbooks ./runbooks/checkout-latency.ts \\
       --input namespace=<namespace> --input deployment=<deployment>

Then make it yours: AUTHORING.md in @aiwebtest/runbooks is the guide to writing runbooks.
`;

describe('runbook init', () => {
  const dir = tempDir('init');
  afterAll(() => dir.dispose());
  let n = 0;
  /** A fresh working directory outside any project. */
  const cwd = () => {
    const path = join(dir.path, `cwd-${++n}`);
    mkdirSync(path);
    return path;
  };

  it('writes the runbook module and its test, named after the id, and says what to do next', async () => {
    const here = cwd();
    const r = await cli(['init', 'checkout-latency'], { cwd: here });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toBe(NEWCOMER_TEXT);
    // CLI.md shows it: keep the two the same.
    expect(readFileSync(join(sdk, 'CLI.md'), 'utf8')).toContain(
      `$ runbook init checkout-latency\n${NEWCOMER_TEXT}\`\`\``,
    );

    const module = readFileSync(join(here, 'runbooks', 'checkout-latency.ts'), 'utf8');
    expect(module).toContain(
      'export function checkoutLatencyRunbook(connect: () => Kubernetes = connectFromEnv) {',
    );
    expect(module).toContain(
      "    id: 'checkout-latency',\n    title: 'Checkout latency',\n    severity: 'P2',",
    );
    expect(module).toContain("triggers: [onAlert({ alertname: 'CheckoutLatency' })],");
    expect(module).toContain("from '@aiwebtest/runbooks';");
    expect(module).toContain('AUTHORING.md');
    expect(module.trimEnd().split('\n').at(-1)).toBe('export default checkoutLatencyRunbook();');

    const test = readFileSync(join(here, 'runbooks', 'checkout-latency.test.ts'), 'utf8');
    expect(test).toContain("import { checkoutLatencyRunbook } from './checkout-latency.ts';");
    expect(test).toContain("describe('checkout-latency', { timeout: TIME_LIMIT }, () => {");
    expect(test).toContain("from '@aiwebtest/runbooks/testing';");
  });

  it('derives names a program can use from any valid id', () => {
    expect(scaffoldNames('5xx-errors')).toEqual({
      id: '5xx-errors',
      title: '5xx errors',
      factory: 'runbook5xxErrors', // an identifier cannot start with a digit
      alertname: '5xxErrors',
    });
    expect(scaffoldNames('db')).toMatchObject({ title: 'Db', factory: 'dbRunbook', alertname: 'Db' });
  });

  it('a bad id exits 2, says what an id looks like, and writes nothing', async () => {
    for (const id of ['Checkout', 'checkout_latency', 'a--b', 'a-', '../up', 'two words', '']) {
      // The same rule as defineRunbook, which would refuse the file when it is loaded.
      expect(() =>
        defineRunbook({ id, title: 't', severity: 'P2', input: z.object({}), run: async () => {} }),
      ).toThrow();
      const here = cwd();
      const r = await cli(['init', id], { cwd: here });
      expect(r.code, id).toBe(ExitCode.Usage);
      expect(r.stderr).toContain(
        `error: Invalid runbook id "${id}": expected lowercase words (a-z, 0-9) joined by dashes`,
      );
      expect(r.stderr).toContain('Nothing was written.');
      expect(existsSync(join(here, 'runbooks')), id).toBe(false);
    }
    const r = await cli(['init', 'Checkout_Latency', '--json'], { cwd: cwd() });
    expect(r.json()).toEqual({
      error: {
        code: 'USAGE',
        message:
          'Invalid runbook id "Checkout_Latency": expected lowercase words (a-z, 0-9) joined by dashes, e.g. "checkout-latency". Did you mean "checkout-latency"? Nothing was written.',
      },
      exitCode: 2,
    });
    for (const id of ['a', '5xx-errors', 'checkout-latency-2']) {
      expect((await cli(['init', id, '--json'], { cwd: cwd() })).code, id).toBe(ExitCode.Ok);
    }
  });

  it('never overwrites without --force: exit 6, both files named, nothing written', async () => {
    const here = cwd();
    mkdirSync(join(here, 'ops'));
    writeFileSync(join(here, 'ops', 'disk-full.test.ts'), 'mine');

    const r = await cli(['init', 'disk-full', '--dir', 'ops'], { cwd: here });
    expect(r.code).toBe(ExitCode.Refused);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'error: ops/disk-full.test.ts already exists. Nothing was written: pass --force to overwrite, or choose another id or --dir.\n',
    );
    expect(existsSync(join(here, 'ops', 'disk-full.ts'))).toBe(false);
    expect(readFileSync(join(here, 'ops', 'disk-full.test.ts'), 'utf8')).toBe('mine');

    const json = await cli(['init', 'disk-full', '--dir', 'ops', '--json'], { cwd: here });
    expect(json.code).toBe(ExitCode.Refused);
    expect(json.json()).toMatchObject({ error: { code: 'INVALID_STATE' }, exitCode: 6 });

    const forced = await cli(['init', 'disk-full', '--dir', 'ops', '--force'], { cwd: here });
    expect(forced.code).toBe(ExitCode.Ok);
    expect(forced.stdout).toContain('  ops/disk-full.ts       the runbook: checks a Deployment');
    expect(forced.stdout).toMatch(/ {2}ops\/disk-full\.test\.ts {2}its tests, .* \(overwritten\)\n/);
    expect(readFileSync(join(here, 'ops', 'disk-full.test.ts'), 'utf8')).toContain("describe('disk-full'");
    expect(readFileSync(join(here, 'ops', 'disk-full.ts'), 'utf8')).toContain("id: 'disk-full',");
  });

  it('refuses a --dir that is not a directory', async () => {
    const here = cwd();
    writeFileSync(join(here, 'runbooks'), '');
    const r = await cli(['init', 'disk-full'], { cwd: here });
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.stderr).toBe('error: --dir runbooks: it exists and is not a directory. Nothing was written.\n');
  });

  it('--json: the files, the packages missing, and the install line for just those, run where they go', async () => {
    // A pnpm workspace holding a package with zod installed and an ESM-only copy of the SDK.
    const here = cwd();
    const pkg = join(here, 'services', 'checkout');
    for (const [path, text] of Object.entries({
      'pnpm-workspace.yaml': 'packages: [services/*]\n',
      'pnpm-lock.yaml': '',
      'package.json': '{ "private": true }',
      'services/checkout/package.json': '{ "name": "checkout" }',
      'services/checkout/node_modules/zod/package.json': '{ "name": "zod", "main": "index.js" }',
      'services/checkout/node_modules/zod/index.js': '',
      'services/checkout/node_modules/@aiwebtest/runbooks/package.json':
        '{ "name": "@aiwebtest/runbooks", "type": "module", "exports": { ".": { "import": "./index.js" } } }',
    })) {
      mkdirSync(join(here, path, '..'), { recursive: true });
      writeFileSync(join(here, path), text);
    }

    const r = await cli(['init', 'checkout-latency', '--dir', 'services/checkout/runbooks', '--json'], {
      cwd: here,
    });
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.json()).toEqual({
      id: 'checkout-latency',
      files: [
        join(pkg, 'runbooks', 'checkout-latency.ts'),
        join(pkg, 'runbooks', 'checkout-latency.test.ts'),
      ],
      missing: ['@kubernetes/client-node', 'vitest'],
      next: [
        {
          what: 'Install the packages it imports (missing here: @kubernetes/client-node, vitest)',
          commands: [
            'cd services/checkout && pnpm add @kubernetes/client-node',
            'cd services/checkout && pnpm add -D vitest',
          ],
        },
        {
          what: 'Run its tests (no cluster needed)',
          commands: ['npx vitest run services/checkout/runbooks/checkout-latency.test.ts'],
        },
        {
          what: 'Diagnose a Deployment in your cluster (checks only, changes nothing); fill in the <…>',
          commands: [
            'KUBECONFIG=~/.kube/config RUNBOOK_KUBE_CONTEXT=<context> RUNBOOK_KUBE_NAMESPACES=<namespace> npx runbook diagnose checkout-latency --runbooks ./services/checkout/runbooks/checkout-latency.ts --input namespace=<namespace> --input deployment=<deployment>',
          ],
        },
      ],
    });

    // At the workspace root itself, pnpm refuses a plain `add`: the line says -w.
    const root = await cli(['init', 'checkout-latency', '--json'], { cwd: here });
    expect(root.json().next[0].commands).toEqual([
      'pnpm add -w @aiwebtest/runbooks zod @kubernetes/client-node',
      'pnpm add -w -D vitest',
    ]);
  });

  it('--help shows the arguments, options and exit codes', async () => {
    const r = await cli(['init', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: runbook init [options] <id>');
    for (const option of ['--dir <dir>', '(default: "runbooks")', '--force', '--json', 'Exit codes:']) {
      expect(r.stdout).toContain(option);
    }
    expect((await cli(['--help'])).stdout).toMatch(/\n {2}init \[options\] <id> +scaffold a runbook module/);
  });
});

describe('writing the two files: all or nothing', () => {
  // `init` looks before it writes (refuseConflicts); these are the failures that come after the look, e.g. a
  // directory or a file that appeared at a target meanwhile, given to the writer directly.
  const dir = tempDir('init-write');
  afterAll(() => dir.dispose());
  let n = 0;
  const fresh = () => {
    const path = join(dir.path, `case-${++n}`);
    mkdirSync(path);
    return path;
  };
  const file = (at: string, name: string, source: string) => ({ path: join(at, name), shown: name, source });

  it('--force: when the second cannot be placed, the first file it overwrote is back as it was', () => {
    const here = fresh();
    writeFileSync(join(here, 'disk-full.ts'), 'my module');
    mkdirSync(join(here, 'disk-full.test.ts')); // the second target is a directory now

    expect(() =>
      writeAllOrNothing(
        [file(here, 'disk-full.ts', 'generated module'), file(here, 'disk-full.test.ts', 'generated test')],
        { force: true },
      ),
    ).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    expect(readFileSync(join(here, 'disk-full.ts'), 'utf8')).toBe('my module');
    // No temporary file or copy is left behind.
    expect(readdirSync(here).sort()).toEqual(['disk-full.test.ts', 'disk-full.ts']);
    expect(readdirSync(join(here, 'disk-full.test.ts'))).toEqual([]);
  });

  it('--force: a first target that is a symbolic link is put back as the link', () => {
    const here = fresh();
    writeFileSync(join(here, 'shared.ts'), 'shared module');
    symlinkSync('shared.ts', join(here, 'disk-full.ts'));
    mkdirSync(join(here, 'disk-full.test.ts'));

    expect(() =>
      writeAllOrNothing(
        [file(here, 'disk-full.ts', 'generated module'), file(here, 'disk-full.test.ts', 'generated test')],
        { force: true },
      ),
    ).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    expect(readlinkSync(join(here, 'disk-full.ts'))).toBe('shared.ts');
    expect(readFileSync(join(here, 'shared.ts'), 'utf8')).toBe('shared module');
    expect(readdirSync(here).sort()).toEqual(['disk-full.test.ts', 'disk-full.ts', 'shared.ts']);
  });

  it('--force: a first file that did not exist is removed again', () => {
    const here = fresh();
    mkdirSync(join(here, 'disk-full.test.ts'));

    expect(() =>
      writeAllOrNothing(
        [file(here, 'disk-full.ts', 'generated module'), file(here, 'disk-full.test.ts', 'generated test')],
        { force: true },
      ),
    ).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    expect(readdirSync(here)).toEqual(['disk-full.test.ts']);
  });

  it('--force: both placed, the files they replaced gone, nothing else left', () => {
    const here = fresh();
    writeFileSync(join(here, 'disk-full.ts'), 'my module');

    writeAllOrNothing(
      [file(here, 'disk-full.ts', 'generated module'), file(here, 'disk-full.test.ts', 'generated test')],
      { force: true },
    );
    expect(readFileSync(join(here, 'disk-full.ts'), 'utf8')).toBe('generated module');
    expect(readFileSync(join(here, 'disk-full.test.ts'), 'utf8')).toBe('generated test');
    expect(readdirSync(here).sort()).toEqual(['disk-full.test.ts', 'disk-full.ts']);
  });

  it('without --force: a second file that appeared is left alone, and the first is not written', () => {
    const here = fresh();
    writeFileSync(join(here, 'disk-full.test.ts'), 'theirs');

    let error: unknown;
    try {
      writeAllOrNothing(
        [file(here, 'disk-full.ts', 'generated module'), file(here, 'disk-full.test.ts', 'generated test')],
        { force: false },
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidStateError);
    expect((error as Error).message).toBe(
      'disk-full.test.ts appeared while init was writing. Nothing was written.',
    );
    expect(readFileSync(join(here, 'disk-full.test.ts'), 'utf8')).toBe('theirs');
    expect(readdirSync(here)).toEqual(['disk-full.test.ts']);
  });
});

interface Finished {
  code: number | null;
  stdout: string;
  /** stdout and stderr, interleaved. */
  output: string;
}

/** Runs a command to its end, capturing its output; `kill()` stops it. */
function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  let child: ChildProcess | undefined;
  const finished = new Promise<Finished>((resolve, reject) => {
    child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let output = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
      output += d;
    });
    child.stderr?.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, output }));
  });
  return { finished, kill: () => child?.kill() };
}

describe('the scaffolded files, in a project that has the SDK', () => {
  // Written inside packages/sdk, where `@aiwebtest/runbooks` resolves to this package's build (its exports
  // point at dist) and zod, @kubernetes/client-node and vitest to its node_modules, as in a user's project.
  // `.runbook/` is ignored by git and biome.
  let project: string;
  let module: string;
  let testFile: string;
  let children: ReturnType<typeof start>[] = [];
  let generatedTests: Promise<Finished>;
  let builtList: Promise<Finished>;

  beforeAll(async () => {
    if (
      !existsSync(join(sdk, 'dist', 'testing', 'index.d.ts')) ||
      !existsSync(join(sdk, 'dist', 'cli', 'main.js'))
    ) {
      throw new Error('These tests use the SDK build: run `pnpm --filter @aiwebtest/runbooks build` first.');
    }
    mkdirSync(join(sdk, '.runbook'), { recursive: true });
    project = mkdtempSync(join(sdk, '.runbook', 'init-test-'));
    const r = await cli(['init', 'checkout-latency', '--dir', '.', '--json'], { cwd: project });
    expect(r.code).toBe(0);
    expect(r.json().missing).toEqual([]);
    [module, testFile] = r.json().files;

    // Started now, awaited by their tests, so that they run while the others do.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')));
    // The generated tests in a vitest of their own, as `npx vitest run` runs them.
    const vitest = start(join(sdk, 'node_modules', '.bin', 'vitest'), ['run', '--root', project], project, {
      ...env,
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    });
    // The built `runbook`, on plain Node: it loads the .ts module by type stripping.
    const list = start(process.execPath, [join(sdk, 'dist', 'cli', 'main.js'), 'list', '--json'], project, {
      ...env,
      RUNBOOK_MODULES: './checkout-latency.ts',
    });
    children = [vitest, list];
    generatedTests = vitest.finished;
    builtList = list.finished;
  });

  afterAll(async () => {
    for (const child of children) child.kill();
    await Promise.allSettled(children.map((c) => c.finished));
    if (project) rmSync(project, { recursive: true, force: true });
    try {
      rmdirSync(join(sdk, '.runbook')); // only when empty: it may hold someone's store
    } catch {}
  });

  it('the module loads as a runbook without a cluster, and the CLI lists it', async () => {
    const loaded = await import(pathToFileURL(module).href);
    expect(isRunbook(loaded.default)).toBe(true);
    expect(loaded.default).toMatchObject({
      id: 'checkout-latency',
      title: 'Checkout latency',
      severity: 'P2',
      triggers: [{ kind: 'alert', match: { alertname: 'CheckoutLatency' } }],
    });
    expect(loaded.default.input.safeParse({ namespace: 'shop', deployment: 'checkout-api' }).success).toBe(
      true,
    );
    expect(loaded.default.input.safeParse({ namespace: 'Shop', deployment: 'checkout-api' }).success).toBe(
      false,
    );
    expect(isRunbook(loaded.checkoutLatencyRunbook(() => ({})))).toBe(true);

    const described = await cli(
      ['describe', 'checkout-latency', '--runbooks', './checkout-latency.ts', '--json'],
      {
        cwd: project,
      },
    );
    expect(described.code).toBe(0);
    expect(described.json().inputSchema.required).toEqual(['namespace', 'deployment']);
  });

  it('the built `runbook` loads it with Node type stripping', async () => {
    const { code, stdout, output } = await builtList;
    expect(code, output).toBe(0);
    expect(JSON.parse(stdout).runbooks).toEqual([
      {
        id: 'checkout-latency',
        severity: 'P2',
        title: 'Checkout latency',
        triggers: [{ kind: 'alert', match: { alertname: 'CheckoutLatency' } }],
        tags: [],
      },
    ]);
  });

  it('connectFromEnv reads the kubeconfig of KUBECONFIG, the expected context and the namespaces', async () => {
    const { connectFromEnv } = await import(pathToFileURL(module).href);
    const kubeconfig = join(project, 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: lab, cluster: { server: "http://127.0.0.1:1" } }]',
        'users: [{ name: lab, user: {} }]',
        'contexts: [{ name: lab, context: { cluster: lab, user: lab } }]',
        'current-context: lab',
      ].join('\n'),
    );
    try {
      vi.stubEnv('KUBECONFIG', kubeconfig);
      vi.stubEnv('RUNBOOK_KUBE_CONTEXT', undefined);
      vi.stubEnv('RUNBOOK_KUBE_NAMESPACES', undefined);
      expect(() => connectFromEnv()).toThrow(
        'RUNBOOK_KUBE_CONTEXT is not set: set it to the kubeconfig context this runbook is meant for',
      );
      vi.stubEnv('RUNBOOK_KUBE_CONTEXT', 'lab');
      expect(() => connectFromEnv()).toThrow(
        'RUNBOOK_KUBE_NAMESPACES is not set: set it to the namespaces it may change, comma-separated.',
      );
      vi.stubEnv('RUNBOOK_KUBE_NAMESPACES', 'shop, payments,');
      const k8s = connectFromEnv();
      expect(k8s.cluster.context).toBe('lab');
      expect(k8s.cluster.namespaces).toEqual(['shop', 'payments']);
      expect(() => k8s.cluster.assertMayChange('kube-system')).toThrow(/not in the allowed list/);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('both files compile with tsc: strict, NodeNext, erasable syntax only', () => {
    const program = ts.createProgram({
      rootNames: [module, testFile],
      options: {
        target: ts.ScriptTarget.ES2023,
        lib: ['lib.es2023.d.ts'],
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        types: ['node'],
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        noImplicitReturns: true,
        noUnusedLocals: true,
        noUnusedParameters: true,
        verbatimModuleSyntax: true,
        isolatedModules: true,
        // What Node's type stripping needs: no enums, namespaces or parameter properties; `.ts` imports.
        erasableSyntaxOnly: true,
        allowImportingTsExtensions: true,
        skipLibCheck: true,
        noEmit: true,
      },
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file
        ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
  });

  it('its tests pass against the simulator', async () => {
    const { code, output } = await generatedTests;
    expect(output).toMatch(/Tests\s+3 passed \(3\)/);
    expect(code, output).toBe(0);
  });
});
