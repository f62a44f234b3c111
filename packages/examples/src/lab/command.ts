import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LAB_DIR, LAB_DIR_VARIABLE } from '../aiwebtest/environment';
import { LAB_CONTROL_FILE, LabControlFile, type LabUp, labUp } from './lab-up';
import { SCENARIOS } from './scenarios';

/** Where the command writes, what it reads from its environment, and how it waits for Ctrl-C. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Resolves when the user asks the long-running `up` to stop (SIGINT/SIGTERM). */
  untilStopped?: () => Promise<void>;
}

const USAGE = `Usage: aiwebtest-lab <command> [options]

A local AI-Web-Test: the platform on a Kubernetes simulator, PostgreSQL behind PgBouncer, Redis, OpenRouter
and Ollama doubles, a Selenium Grid double and the sample backend — plus Prometheus, Alertmanager and the
runbook service with the AI-Web-Test pack. Inject an incident, watch its alert fire and its runbook heal it.

Commands:
  up [--reset] [--no-serve]   start the lab (foreground; Ctrl-C stops it). --reset re-seeds the database and empties the lab's Redis database;
                              --no-serve starts the lab only (no Prometheus, Alertmanager, runbook service)
  chaos <scenario>            inject an incident for real (chaos --list shows the scenarios)
  heal [<scenario>]           take back injected incidents (all, or one) — for rehearsals; the runbooks
                              heal them without this
  health [--json]             is the lab healthy, and if not, why (exit 0 healthy, 1 not)
  scenarios [--json]          the incident scenarios, the runbook that handles each, which are active

Options:
  --dir <path>                the lab directory (default: $${LAB_DIR_VARIABLE}, else ${DEFAULT_LAB_DIR})
  --json                      machine-readable output
  -h, --help                  show this help

Scenarios: ${SCENARIOS.options.join(', ')}
`;

class UsageError extends Error {}

/** Runs `aiwebtest-lab` with `argv` (without `node` and the script). Exit codes: 0 ok, 1 failure or unhealthy, 2 bad usage. */
export async function runLabCommand(argv: string[], io: CommandIo): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        dir: { type: 'string' },
        reset: { type: 'boolean' },
        'no-serve': { type: 'boolean' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || command === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    const dir = resolve(values.dir ?? io.env[LAB_DIR_VARIABLE] ?? DEFAULT_LAB_DIR);
    const noArgs = () => {
      if (rest.length > 0) throw new UsageError(`"${command}" takes no arguments, got: ${rest.join(' ')}.`);
    };
    switch (command) {
      case 'up':
        noArgs();
        return await up(dir, { reset: values.reset === true, serve: values['no-serve'] !== true }, io);
      case 'chaos': {
        if (values.list) return await scenarios(dir, values.json === true, io);
        const name = scenarioArg(rest, true);
        const answer = (await call(dir, 'POST', `/chaos/${name}`)) as {
          description: string;
          runbook: string;
          alreadyActive: boolean;
        };
        if (values.json) io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
        else
          io.stdout(
            `${name}: ${answer.alreadyActive ? 'already active' : 'injected'} — ${answer.description}\n` +
              `The runbook for it: ${answer.runbook}. Watch: aiwebtest-lab health; runbook runs.\n`,
          );
        return 0;
      }
      case 'heal': {
        const name = scenarioArg(rest, false);
        const answer = (await call(dir, 'POST', name ? `/heal/${name}` : '/heal')) as { healed: string[] };
        if (values.json) io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
        else io.stdout(answer.healed.length ? `healed: ${answer.healed.join(', ')}\n` : 'nothing to heal\n');
        return 0;
      }
      case 'health': {
        noArgs();
        const report = (await call(dir, 'GET', '/health', true)) as {
          healthy: boolean;
          checks: { name: string; ok: boolean; detail: string }[];
          incidents: string[];
        };
        if (values.json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
        else {
          io.stdout(`${report.healthy ? 'healthy' : 'NOT healthy'}\n`);
          for (const c of report.checks) io.stdout(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}\n`);
          if (report.incidents.length)
            io.stdout(
              `chaos injected (not taken back with heal; a runbook may have mended it): ${report.incidents.join(', ')}\n`,
            );
        }
        return report.healthy ? 0 : 1;
      }
      case 'scenarios':
        noArgs();
        return await scenarios(dir, values.json === true, io);
      case undefined:
        throw new UsageError('Missing command: use up, chaos, heal, health or scenarios.');
      default:
        throw new UsageError(`Unknown command "${command}": use up, chaos, heal, health or scenarios.`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`aiwebtest-lab: ${(e as Error).message}\nRun "aiwebtest-lab --help" for usage.\n`);
      return 2;
    }
    io.stderr(`aiwebtest-lab: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function scenarioArg(rest: string[], required: boolean): string | undefined {
  const [name, ...extra] = rest;
  if (name === undefined) {
    if (required) throw new UsageError(`"chaos" needs a scenario: one of ${SCENARIOS.options.join(', ')}.`);
    return undefined;
  }
  if (extra.length > 0) throw new UsageError(`one scenario at a time, got also: ${extra.join(' ')}.`);
  if (!SCENARIOS.safeParse(name).success)
    throw new UsageError(`Unknown scenario "${name}": expected one of ${SCENARIOS.options.join(', ')}.`);
  return name;
}

/** Reads `<dir>/control.json`, written by a running `up`. */
async function controlFile(dir: string): Promise<LabControlFile> {
  let text: string;
  try {
    text = await readFile(join(dir, LAB_CONTROL_FILE), 'utf8');
  } catch {
    throw new Error(`no lab is running in ${dir} (no ${LAB_CONTROL_FILE}); start one with: aiwebtest-lab up`);
  }
  return LabControlFile.parse(JSON.parse(text));
}

/** One request to the running lab's control API; `acceptError` keeps a 503 answer (an unhealthy lab). */
async function call(
  dir: string,
  method: 'GET' | 'POST',
  path: string,
  acceptError = false,
): Promise<unknown> {
  const { controlUrl } = await controlFile(dir);
  let response: Response;
  try {
    response = await fetch(new URL(path, controlUrl), { method, signal: AbortSignal.timeout(60_000) });
  } catch {
    throw new Error(`the lab at ${controlUrl} does not answer; is "aiwebtest-lab up" still running?`);
  }
  const body = (await response.json()) as { error?: { message?: string } };
  if (!response.ok && !(acceptError && response.status === 503))
    throw new Error(body.error?.message ?? `the lab answered ${response.status}`);
  return body;
}

async function scenarios(dir: string, json: boolean, io: CommandIo): Promise<number> {
  const answer = (await call(dir, 'GET', '/scenarios')) as {
    scenarios: { name: string; runbook: string; description: string; active: boolean }[];
  };
  if (json) io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
  else
    for (const s of answer.scenarios)
      io.stdout(`${s.active ? '*' : ' '} ${s.name.padEnd(26)} → ${s.runbook.padEnd(28)} ${s.description}\n`);
  return 0;
}

async function up(dir: string, options: { reset: boolean; serve: boolean }, io: CommandIo): Promise<number> {
  let running: LabUp | undefined;
  try {
    running = await labUp({ dir, resetDatabase: options.reset, serve: options.serve }, (line) =>
      io.stdout(`… ${line}\n`),
    );
    io.stdout(summary(dir, running));
    await (io.untilStopped ?? (() => new Promise<void>(() => {})))();
    io.stdout('stopping the lab…\n');
    return 0;
  } finally {
    await running?.stop();
  }
}

function summary(dir: string, up: LabUp): string {
  const f = up.file;
  const lines = [
    '',
    `The AI-Web-Test lab is up (lab directory ${dir}).`,
    `  Kubernetes (simulated)  KUBECONFIG=${up.lab.kubeconfigPath}  namespace ${up.lab.namespace}`,
    `  backend                 ${up.lab.env.backendUrl}/api/v1/health`,
    `  lab control + exporter  ${f.controlUrl}/health  ${f.controlUrl}/metrics`,
  ];
  if (f.serviceUrl && f.tokenFiles) {
    lines.push(
      `  runbook service         ${f.serviceUrl}/api/v1/runbooks   (token: ${f.tokenFiles.oncall}; a second approver: ${f.tokenFiles.approver})`,
      `  Prometheus              ${f.prometheusUrl}/alerts`,
      `  Alertmanager            ${f.alertmanagerUrl}`,
      '',
      'Try, in another terminal from the repository root:',
      '  pnpm lab chaos requirements-agent-down     # the agent crash-loops; AgentDown fires in ~35 s',
      `  curl -s -H "Authorization: Bearer $(cat ${f.tokenFiles.oncall})" ${f.serviceUrl}/api/v1/runs?limit=5`,
      '  pnpm lab health                            # healthy again once agent-failure has run',
      // The service's embedded store is its own (PGlite is single-process): the CLI keeps a store of its own.
      `  AIWEBTEST_LAB_DIR=${dir} pnpm runbook diagnose database-performance --runbooks ./packages/examples/dist/index.js`,
      '  pnpm lab scenarios                         # every incident you can cause',
    );
  } else {
    lines.push(
      '',
      `Runbooks by hand: AIWEBTEST_LAB_DIR=${dir} pnpm runbook diagnose agent-failure --input agent=requirements-agent --runbooks ./packages/examples/dist/index.js`,
    );
  }
  lines.push('Ctrl-C stops the lab.', '');
  return `${lines.join('\n')}\n`;
}
