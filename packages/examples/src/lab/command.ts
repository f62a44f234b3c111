import { parseArgs } from 'node:util';
import { defaultLabDir, isLabStateError, LAB_DIR_ENV, openLab } from './lab';
import { AGENT_NAMES, AgentName, type AgentState, FAULTS, Fault } from './state';

/** Where the command writes, and what it reads from its environment. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const USAGE = `Usage: aiwebtest-lab <command> [options]

A local stand-in for the AI-Web-Test cluster: six agents that break and heal.

Commands:
  break <agent> [--fault ${FAULTS.join('|')}]
                        make the agent's pods crash-loop (default fault: crash-loop-after-oom;
                        bad-config survives a restart)
  heal <agent>          make every pod of the agent ready again
  status [--json]       show every agent's pods

Options:
  --dir <path>          the lab directory (default: $${LAB_DIR_ENV}, else .runbook/lab)
  -h, --help            show this help

Agents: ${AGENT_NAMES.join(', ')}
`;

class UsageError extends Error {}

/** Runs `aiwebtest-lab` with `argv` (without `node` and the script). Returns the exit code: 0, 1 on failure, 2 on bad usage. */
export async function runLabCommand(argv: string[], io: CommandIo): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        fault: { type: 'string' },
        json: { type: 'boolean' },
        dir: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || command === 'help') {
      io.stdout(USAGE);
      return 0;
    }
    if (values.fault !== undefined && command !== 'break')
      throw new UsageError('--fault applies to "break" only.');
    if (values.json && command !== 'status') throw new UsageError('--json applies to "status" only.');
    const lab = openLab(values.dir ?? defaultLabDir(io.env));
    switch (command) {
      case 'break': {
        const agent = agentArg(command, rest);
        const fault = values.fault === undefined ? undefined : faultArg(values.fault);
        const state = await lab.breakAgent(agent, fault);
        io.stdout(`${agent}: broken (${state.fault}), ${state.readyReplicas}/${state.replicas} pods ready\n`);
        return 0;
      }
      case 'heal': {
        const agent = agentArg(command, rest);
        const state = await lab.healAgent(agent);
        io.stdout(`${agent}: healed, ${state.readyReplicas}/${state.replicas} pods ready\n`);
        return 0;
      }
      case 'status': {
        if (rest.length > 0) throw new UsageError(`"status" takes no arguments, got: ${rest.join(' ')}.`);
        const state = await lab.readState();
        if (values.json) io.stdout(`${JSON.stringify({ dir: lab.dir, ...state }, null, 2)}\n`);
        else io.stdout(statusTable(lab.dir, state.namespace, state.agents));
        return 0;
      }
      case undefined:
        throw new UsageError('Missing command: use break, heal or status.');
      default:
        throw new UsageError(`Unknown command "${command}": use break, heal or status.`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`aiwebtest-lab: ${(e as Error).message}\nRun "aiwebtest-lab --help" for usage.\n`);
      return 2;
    }
    if (isLabStateError(e)) {
      io.stderr(`aiwebtest-lab: ${e.message}\n`);
      return 1;
    }
    io.stderr(`aiwebtest-lab: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function agentArg(command: string, rest: string[]): AgentName {
  const [name, ...extra] = rest;
  if (name === undefined)
    throw new UsageError(`"${command}" needs an agent: one of ${AGENT_NAMES.join(', ')}.`);
  if (extra.length > 0) throw new UsageError(`"${command}" takes one agent, got also: ${extra.join(' ')}.`);
  const parsed = AgentName.safeParse(name);
  if (!parsed.success)
    throw new UsageError(`Unknown agent "${name}": expected one of ${AGENT_NAMES.join(', ')}.`);
  return parsed.data;
}

function faultArg(value: string) {
  const parsed = Fault.safeParse(value);
  if (!parsed.success)
    throw new UsageError(`Unknown fault "${value}": expected one of ${FAULTS.join(', ')}.`);
  return parsed.data;
}

function statusTable(dir: string, namespace: string, agents: Record<AgentName, AgentState>): string {
  const rows = AGENT_NAMES.map((name) => {
    const a = agents[name];
    const status = a.fault ? `CrashLoopBackOff (${a.fault})` : 'Running';
    return [name, `${a.readyReplicas}/${a.replicas}`, status, a.restartedAt ?? '-'];
  });
  const table = [['AGENT', 'READY', 'STATUS', 'RESTARTED AT'], ...rows];
  const widths = table[0]?.map((_, col) => Math.max(...table.map((row) => row[col]?.length ?? 0))) ?? [];
  const lines = table.map((row) =>
    row
      .map((cell, col) => cell.padEnd(widths[col] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  return `Lab ${dir} (namespace ${namespace})\n${lines.join('\n')}\n`;
}
