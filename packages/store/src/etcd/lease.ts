import { setTimeout as sleep } from 'node:timers/promises';
import { type Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, type ILeaseKeepAliveResponse } from 'etcd3';
import type { MemberClients } from './member-clients.ts';

/**
 * One keep-alive round trip on a fresh LeaseKeepAlive stream. Resolves with the TTL etcd
 * answered (0 = the lease does not exist or expired). Rejects on stream errors or after
 * `timeoutMs`. The stream is always closed.
 */
export async function keepAliveOnce(client: Etcd3, etcdLeaseId: string, timeoutMs: number): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive();
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GRPCDeadlineExceededError(`no keep-alive answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      stream.on('data', (res: ILeaseKeepAliveResponse) => {
        clearTimeout(timer);
        resolve(Number(res.TTL));
      });
      stream.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      stream.on('end', () => {
        clearTimeout(timer);
        reject(new GRPCUnavailableError('the keep-alive stream ended without an answer'));
      });
      stream.write({ ID: etcdLeaseId });
    });
  } finally {
    stream.end();
    stream.cancel();
  }
}

/**
 * How long one keep-alive attempt waits: a member answers one in milliseconds, so a longer
 * wait means this one cannot (frozen, cut off) and the next attempt goes to another member.
 */
const KEEPALIVE_ATTEMPT_MS = 2000;

/**
 * Keep-alive round trips until one is answered or `timeoutMs` passed. Each attempt is a new
 * stream on the next member in `members`' order (the one that answered last first), so one
 * member that accepts connections but never answers uses up one attempt, not the whole time.
 * Other errors than "no answer" or "unavailable" end it at once.
 */
export async function keepAliveWithin(members: MemberClients, etcdLeaseId: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  const order = members.order();
  for (let attempt = 0; ; attempt++) {
    const endpoint = order[attempt % order.length]!;
    const left = deadline - Date.now();
    try {
      const ttl = await keepAliveOnce(members.client(endpoint), etcdLeaseId, Math.max(1, Math.min(KEEPALIVE_ATTEMPT_MS, left)));
      members.answered(endpoint);
      return ttl;
    } catch (e) {
      const retryable = e instanceof GRPCDeadlineExceededError || e instanceof GRPCUnavailableError;
      if (!retryable || Date.now() + 100 >= deadline) throw e;
      if (e instanceof GRPCUnavailableError) await sleep(100);
    }
  }
}
