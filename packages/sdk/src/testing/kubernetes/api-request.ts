import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeObjectInput } from './object-store';
import type { ResourceType } from './resources';
import { badRequest, StatusError } from './status-error';

/**
 * The HTTP side of the simulated API server: reading and checking request bodies the way the real
 * server decodes them, and writing JSON, text and `Status` answers.
 */

/** One request being served. */
export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: URLSearchParams;
}

/** The real server's request body limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** The patch formats served (server-side apply is not). */
export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
];

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The parts of a DELETE body the simulator honours. */
export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
}

export function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
    ...headers,
  });
  res.end(text);
}

export function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Every failure becomes a Status; anything that is not a StatusError is a bug, answered as 500 InternalError. */
export function sendError(res: ServerResponse, e: unknown): void {
  const error =
    e instanceof StatusError
      ? e
      : new StatusError(
          500,
          'InternalError',
          `Internal error occurred: ${e instanceof Error ? e.message : String(e)}`,
        );
  if (res.headersSent) {
    res.end(); // a watch or log stream had started: all we can do is end it
    return;
  }
  const retry = error.code === 429 || error.code === 503 ? { 'Retry-After': '1' } : undefined;
  sendJson(res, error.code, error.toStatus(), retry);
}

export const notFoundPath = () =>
  new StatusError(404, 'NotFound', 'the server could not find the requested resource');
export const methodNotAllowed = () =>
  new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');

export function requireVerb(type: ResourceType, verb: string): void {
  if (!type.verbs.includes(verb)) throw methodNotAllowed();
}

export const isTrue = (v: string | null) => v === 'true' || v === '1';

/** `dryRun=All` (the only value the API defines) means validate and answer, store nothing. */
export function dryRun(r: Request): boolean {
  const values = r.query.getAll('dryRun');
  for (const v of values) {
    if (v !== 'All') throw badRequest(`dryRun: Unsupported value: "${v}": supported values: "All"`);
  }
  return values.length > 0;
}

export function mediaType(r: Request): string {
  return (r.req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export async function readBody(r: Request): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of r.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new StatusError(
        413,
        'RequestEntityTooLarge',
        `Request entity too large: limit is ${MAX_BODY_BYTES}`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON object body of the expected kind (POST, PUT). */
export async function readObject(r: Request, kind: string, apiVersion: string): Promise<KubeObjectInput> {
  const type = mediaType(r);
  if (type !== '' && type !== 'application/json' && type !== '*/*') {
    throw new StatusError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: application/json (got ${type})`,
    );
  }
  const text = await readBody(r);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw badRequest(
      `the object provided is unrecognized (must be of type ${kind}): couldn't get version/kind; json parse error: ${(e as Error).message}`,
    );
  }
  if (!isObject(body))
    throw badRequest(`the object provided is unrecognized (must be of type ${kind}): not a JSON object`);
  if (
    (body.kind !== undefined && body.kind !== kind) ||
    (body.apiVersion !== undefined && body.apiVersion !== apiVersion)
  ) {
    throw badRequest(
      `${String(body.kind)} in version "${String(body.apiVersion)}" cannot be handled as a ${kind}: the body's kind and apiVersion must be ${kind} and ${apiVersion}`,
    );
  }
  const { metadata } = body;
  if (metadata !== undefined && !isObject(metadata)) {
    throw badRequest(
      `the object provided is unrecognized (must be of type ${kind}): metadata must be an object`,
    );
  }
  for (const field of ['name', 'namespace', 'generateName', 'resourceVersion'] as const) {
    const value = metadata?.[field];
    if (value !== undefined && value !== null && typeof value !== 'string') {
      throw badRequest(
        `${kind} in version "${apiVersion}" cannot be handled as a ${kind}: metadata.${field} must be a string`,
      );
    }
  }
  return body as KubeObjectInput;
}

/** A patch body; the format is the Content-Type, as on the real server. */
export async function readPatch(r: Request): Promise<unknown> {
  const type = mediaType(r);
  if (type === 'application/apply-patch+yaml') {
    throw new StatusError(
      415,
      'UnsupportedMediaType',
      'server-side apply (application/apply-patch+yaml) is not supported by the simulator: use a JSON, merge or strategic merge patch',
    );
  }
  if (!PATCH_TYPES.includes(type)) {
    throw new StatusError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}`,
    );
  }
  const text = await readBody(r);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`error decoding patch: ${(e as Error).message}`);
  }
}

export async function readDeleteOptions(r: Request): Promise<DeleteOptions> {
  const text = await readBody(r);
  if (text.trim() === '') return {};
  try {
    const body: unknown = JSON.parse(text);
    return isObject(body) ? (body as DeleteOptions) : {};
  } catch (e) {
    throw badRequest(
      `the object provided is unrecognized (must be of type DeleteOptions): ${(e as Error).message}`,
    );
  }
}
