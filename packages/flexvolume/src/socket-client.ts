import { request } from 'node:http';
import { DotmeshError, errorFromObject } from '@dotmesh/core';
import type { FlexErrorReply } from '@dotmesh/rpc/flexvolume';

/** Longest reply read from the server. */
const MAX_REPLY_BYTES = 64 * 1024;

/**
 * POSTs `body` as JSON to `path` on the server's unix socket. A 200 reply resolves with its
 * JSON; a refusal rejects with the server's error (code, message, hint); no server rejects
 * with UNAVAILABLE naming the socket, `data.unreachable` true.
 */
export function postToSocket(socketPath: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) res.destroy(new Error(`reply over ${MAX_REPLY_BYTES} bytes`));
          else chunks.push(c);
        });
        res.once('error', reject);
        res.once('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(new DotmeshError('INTERNAL', `dotmesh-server answered ${res.statusCode} with a body that is not JSON`));
            return;
          }
          if (res.statusCode === 200) resolve(json);
          else reject(refusal(json, res.statusCode ?? 0));
        });
      },
    );
    req.once('timeout', () => req.destroy(new Error(`no reply within ${timeoutMs} ms`)));
    req.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new DotmeshError('UNAVAILABLE', `cannot reach dotmesh-server on ${socketPath}: ${e.code ?? e.message}`, {
          hint: 'is dotmesh-server running on this node?',
          data: { unreachable: true },
        }),
      ),
    );
    req.end(text);
  });
}

function refusal(json: unknown, status: number): DotmeshError {
  return errorFromObject((json as Partial<FlexErrorReply> | null)?.Error, {
    fallbackMessage: `dotmesh-server answered ${status}`,
  });
}
