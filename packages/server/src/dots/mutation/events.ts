import { EventEmitter } from 'node:events';

export type MutationOp =
  | 'create'
  | 'commit'
  | 'branch'
  | 'rollback'
  | 'delete'
  | 'delete-branch'
  | 'delete-commit'
  | 'receive'
  | 'stash'
  | 'rename'
  | 'fork'
  | 'collaborators'
  | 'mastership'
  | 'recover';

/** Emitted once a mutation is stored and visible (after its finishing steps). */
export interface DotChanged {
  readonly op: MutationOp;
  readonly dotId: string;
}

/**
 * What changed, for the parts that follow dots without being asked (replication, container
 * tracking, metrics). Listeners run synchronously after the mutation; they must not throw
 * and must not block (queue work of their own).
 */
export class DotEvents {
  readonly #emitter = new EventEmitter();

  emit(event: DotChanged): void {
    this.#emitter.emit('changed', event);
  }

  onChanged(listener: (event: DotChanged) => void): () => void {
    this.#emitter.on('changed', listener);
    return () => this.#emitter.off('changed', listener);
  }
}
