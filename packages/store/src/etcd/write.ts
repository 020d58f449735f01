import type { Etcd3 } from 'etcd3';
import type { MemberClients } from './member-clients.ts';

/** The deadline of one store call, shared by every attempt at it. */
export interface CallOptions {
  readonly deadline: number;
}

/**
 * Errors that prove a write was not applied, so it may go to another member: the member
 * could not be reached at all (no connection), or etcd refused it before proposing it (no
 * leader, a dropped proposal, too many requests). A timeout is not one of them: the write may
 * have reached etcd.
 */
const NOT_APPLIED =
  /No connection established|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|etcdserver: (no leader|too many requests|not capable)|raft proposal dropped/;

/**
 * One write on the members in `members`' order (the one that answered last first), every attempt
 * within `options.deadline`: an attempt that certainly did not apply goes on to the next member;
 * any other failure (a timeout, a dropped connection: the write may have been applied) ends it.
 * A member that failed a write is tried after the others next time.
 */
export async function writeOnMembers<T>(
  members: MemberClients,
  options: CallOptions,
  fn: (client: Etcd3, options: CallOptions) => Promise<T>,
): Promise<T> {
  const order = members.order();
  let last: unknown;
  for (const endpoint of order) {
    try {
      const result = await fn(members.client(endpoint), options);
      members.answered(endpoint);
      return result;
    } catch (e) {
      last = e;
      members.missed(endpoint);
      if (!NOT_APPLIED.test(e instanceof Error ? e.message : String(e)) || Date.now() >= options.deadline) throw e;
    }
  }
  throw last;
}
