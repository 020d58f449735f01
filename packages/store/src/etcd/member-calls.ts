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
  let last: unknown;
  for (const endpoint of members.order()) {
    try {
      const result = await fn(members.client(endpoint), options);
      members.answered(endpoint);
      return result;
    } catch (e) {
      last = e;
      members.missed(endpoint);
      if (!NOT_APPLIED.test(messageOf(e)) || Date.now() >= options.deadline) throw e;
    }
  }
  throw last;
}

/** The shortest time a read attempt on one member is given (a read of many large values takes a while). */
const MIN_READ_ATTEMPT_MS = 1000;

/**
 * One read (or another call that may be sent twice) on the members in turn, all within
 * `options.deadline`: each attempt gets an equal share of the time left (at least
 * MIN_READ_ATTEMPT_MS), so a member that accepts connections but never answers (frozen, cut
 * off) costs one share, not the whole time. A failure `retryable` accepts goes on to the next
 * member; any other (an answer of etcd's: compacted, refused) ends it.
 */
export async function readOnMembers<T>(
  members: MemberClients,
  options: CallOptions,
  retryable: (e: unknown) => boolean,
  fn: (client: Etcd3, options: CallOptions) => Promise<T>,
): Promise<T> {
  const order = members.order();
  let last: unknown;
  for (const [i, endpoint] of order.entries()) {
    const left = options.deadline - Date.now();
    const share = Math.max(MIN_READ_ATTEMPT_MS, left / (order.length - i));
    try {
      const result = await fn(members.client(endpoint), { deadline: Math.min(options.deadline, Date.now() + share) });
      members.answered(endpoint);
      return result;
    } catch (e) {
      last = e;
      if (!retryable(e)) throw e;
      members.missed(endpoint);
      if (Date.now() >= options.deadline) throw e;
    }
  }
  throw last;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
