import { type CommitOrigin, DotmeshError, MASTER_BRANCH, validateFsId, validateName } from '@dotmesh/core';

/**
 * Where an incoming commit or branch belongs, as the sending side describes it. Everything
 * here comes from a peer (or a user through a peer), so every field is validated and checked
 * against what this server already holds before anything is written.
 */
export interface IncomingVolume {
  /** The dot's global id and its name on THIS server. */
  readonly dot: { readonly id: string; readonly namespace: string; readonly name: string };
  readonly fsId: string;
  readonly branch: string;
  readonly origin: CommitOrigin | null;
}

/** Decodes an IncomingVolume from untrusted JSON (throws INVALID_ARGUMENT naming the field). */
export function parseIncomingVolume(raw: unknown): IncomingVolume {
  const o = object(raw, 'volume');
  const dot = object(o.dot, 'volume.dot');
  const branch = validateName('branch', o.branch);
  const fsId = validateFsId(o.fsId, 'volume.fsId');
  const id = validateFsId(dot.id, 'volume.dot.id');
  const origin = parseOrigin(o.origin, 'volume.origin');
  if ((branch === MASTER_BRANCH) !== (fsId === id)) {
    throw new DotmeshError('INVALID_ARGUMENT', `volume ${fsId}: the master branch's id must be the dot's id (${id})`);
  }
  if ((branch === MASTER_BRANCH) !== (origin === null)) {
    throw new DotmeshError('INVALID_ARGUMENT', `volume ${fsId}: only the master branch has no origin`);
  }
  return {
    dot: { id, namespace: validateName('namespace', dot.namespace), name: validateName('dot', dot.name) },
    fsId,
    branch,
    origin,
  };
}

export function parseOrigin(raw: unknown, what: string): CommitOrigin | null {
  if (raw === null || raw === undefined) return null;
  const o = object(raw, what);
  return { fsId: validateFsId(o.fsId, `${what}.fsId`), commitId: validateName('commit', o.commitId) };
}

function object(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DotmeshError('INVALID_ARGUMENT', `${what} must be an object`);
  }
  return raw as Record<string, unknown>;
}

/** One commit arriving from a peer: where it goes, its id and its history parent. */
export interface IncomingCommit {
  readonly volume: IncomingVolume;
  readonly commitId: string;
  readonly parent: CommitOrigin | null;
  /** The branch the transfer is about: its volume takes every commit as its new head. */
  readonly targetFsId: string;
}

/** Decodes an IncomingCommit from untrusted JSON (throws INVALID_ARGUMENT naming the field). */
export function parseIncomingCommit(raw: unknown): IncomingCommit {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    volume: parseIncomingVolume(o.volume),
    commitId: validateName('commit', o.commitId),
    parent: parseOrigin(o.parent, 'parent'),
    targetFsId: validateFsId(o.targetFsId, 'targetFsId'),
  };
}

/** The original's refusal to write where containers are running. */
export function activeContainersError(names: readonly string[]): DotmeshError {
  return new DotmeshError(
    'IN_USE',
    `Aborting because there are active containers running on volume where data would be written: ${names.join(', ')}. Stop the containers.`,
    { data: { containers: [...names] } },
  );
}
