import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type PodFilesystems, runCommand } from './exec-filesystem';
import { acceptWebSocket, rejectUpgrade } from './exec-websocket';
import type { ObjectStore } from './object-store';
import { PODS } from './resources';

/** Handles an HTTP upgrade request the API server does not serve itself. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

// The channel protocols `@kubernetes/client-node` and kubectl offer; v5 adds a close-stream message we never need.
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const EXEC_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/exec$/;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;

/**
 * `pods/exec` over WebSocket, the way the kubelet answers it through the API server: the command runs in the
 * pod's simulated filesystem ({@link runCommand}), stdout and stderr go out on channels 1 and 2, and channel 3
 * carries the `Status` (`Success`, or `Failure` with reason `NonZeroExitCode` and the exit code in
 * `details.causes[reason=ExitCode]`). A missing pod is 404, an unknown container 400, both as `Status` bodies.
 */
export function execUpgradeHandler(
  store: ObjectStore,
  filesystems: PodFilesystems,
  now: () => Date = () => new Date(),
): UpgradeHandler {
  return (req, socket) => {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const match = EXEC_PATH.exec(url.pathname);
    if (!match) {
      rejectUpgrade(socket, 404, 'Not Found', 'the simulator upgrades only pods/exec');
      return;
    }
    const namespace = decodeURIComponent(match[1] ?? '');
    const name = decodeURIComponent(match[2] ?? '');
    const pod = store.find(PODS, namespace, name) as
      | { spec?: { containers?: { name: string }[] } }
      | undefined;
    if (!pod) {
      rejectStatus(socket, 404, 'NotFound', `pods "${name}" not found`);
      return;
    }
    const containers = (pod.spec?.containers ?? []).map((c) => c.name);
    // An empty container (the client always sends the parameter) means the pod's only or first one, as kubectl does.
    const container = url.searchParams.get('container') || (containers[0] ?? '');
    if (!containers.includes(container)) {
      rejectStatus(socket, 400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
      return;
    }
    const command = url.searchParams.getAll('command');
    if (command.length === 0) {
      rejectStatus(socket, 400, 'BadRequest', 'you must specify at least 1 command');
      return;
    }
    const ws = acceptWebSocket(req, socket, PROTOCOLS);
    if (!ws) return;
    const result = runCommand(command, filesystems.files(namespace, name), now());
    if (result.stdout && url.searchParams.get('stdout') !== 'false') ws.send(channel(STDOUT, result.stdout));
    if (result.stderr && url.searchParams.get('stderr') !== 'false') ws.send(channel(STDERR, result.stderr));
    ws.send(channel(STATUS, JSON.stringify(statusOf(command, result.exitCode))));
    ws.close();
  };
}

function channel(n: number, text: string): Buffer {
  return Buffer.concat([Buffer.from([n]), Buffer.from(text, 'utf8')]);
}

function statusOf(command: string[], exitCode: number) {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

function rejectStatus(socket: Duplex, code: number, reason: string, message: string): void {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
  rejectUpgrade(socket, code, reason === 'NotFound' ? 'Not Found' : 'Bad Request', body, 'application/json');
}
