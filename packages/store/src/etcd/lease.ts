import { type Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, type ILeaseKeepAliveResponse } from 'etcd3';

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
