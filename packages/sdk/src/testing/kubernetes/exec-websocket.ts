import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

// RFC 6455, server side, as much as `kubectl exec` needs: the opening handshake, unmasked binary frames out,
// masked frames in (only close and ping matter: the exec streams are one-way here). Written out rather than
// importing `ws`, which the SDK does not depend on.

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** A server-side WebSocket over an upgraded socket. */
export interface ServerWebSocket {
  /** The subprotocol agreed on (`v4.channel.k8s.io`, …). */
  readonly protocol: string;
  /** Sends one binary message. */
  send(data: Buffer): void;
  /** Sends a close frame (1000) and ends the socket once the peer answers, or after a second. */
  close(): void;
}

/**
 * Completes the opening handshake, choosing the first of the client's subprotocols that `supported` lists.
 * Answers 400 and returns `undefined` when the request is no WebSocket upgrade or offers no supported subprotocol.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  supported: readonly string[],
): ServerWebSocket | undefined {
  const key = req.headers['sec-websocket-key'];
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const protocol = offered.find((p) => supported.includes(p));
  if (typeof key !== 'string' || String(req.headers.upgrade).toLowerCase() !== 'websocket' || !protocol) {
    rejectUpgrade(
      socket,
      400,
      'Bad Request',
      `expected a WebSocket upgrade with one of the subprotocols ${supported.join(', ')}`,
    );
    return undefined;
  }
  const accept = createHash('sha1')
    .update(key + HANDSHAKE_GUID)
    .digest('base64');
  socket.write(
    [
      'HTTP/1.1 101 Switching Protocols',
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Accept: ${accept}`,
      `Sec-WebSocket-Protocol: ${protocol}`,
      '',
      '',
    ].join('\r\n'),
  );
  let closing = false;
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const frame = decodeFrame(pending);
      if (!frame) return;
      pending = pending.subarray(frame.length);
      if (frame.opcode === OP_CLOSE) {
        if (!closing) socket.write(encodeFrame(OP_CLOSE, frame.payload.subarray(0, 2)));
        closing = true;
        socket.end();
        return;
      }
      if (frame.opcode === OP_PING) socket.write(encodeFrame(OP_PONG, frame.payload));
    }
  });
  socket.on('error', () => socket.destroy());
  return {
    protocol,
    send(data) {
      if (!closing && socket.writable) socket.write(encodeFrame(OP_BINARY, data));
    },
    close() {
      if (closing) return;
      closing = true;
      const code = Buffer.alloc(2);
      code.writeUInt16BE(1000);
      if (socket.writable) socket.write(encodeFrame(OP_CLOSE, code));
      setTimeout(() => socket.destroy(), 1_000).unref();
    },
  };
}

/** Answers an upgrade request with a plain HTTP error (a client then fails its handshake with that status). */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  reason: string,
  body: string,
  contentType = 'text/plain',
): void {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** One unmasked frame with FIN set, as a server sends it. */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? Buffer.alloc(2) : length < 0x10000 ? Buffer.alloc(4) : Buffer.alloc(10);
  header[0] = 0x80 | opcode;
  if (length < 126) header[1] = length;
  else if (length < 0x10000) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([header, payload]);
}

/** The first complete frame in `buffer` (unmasked when the client masked it), or `undefined` when incomplete. */
export function decodeFrame(buffer: Buffer): { opcode: number; payload: Buffer; length: number } | undefined {
  if (buffer.length < 2) return undefined;
  const opcode = (buffer[0] ?? 0) & 0x0f;
  const masked = ((buffer[1] ?? 0) & 0x80) !== 0;
  let length = (buffer[1] ?? 0) & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (masked)
    for (let i = 0; i < payload.length; i++)
      payload[i] = (payload[i] ?? 0) ^ (buffer[maskOffset + (i % 4)] ?? 0);
  return { opcode, payload, length: offset + length };
}
