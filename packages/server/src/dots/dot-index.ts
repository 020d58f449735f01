import { branchHead, type CommitOrigin, type CommitRecord, DotmeshError, historyFrom, MASTER_BRANCH } from '@dotmesh/core';
import type { BranchLabel, CommitMetaRecord, DotInfo } from './labels.ts';

/**
 * The server's in-memory index of the dots, branches and commits this node's pool holds:
 * rebuilt from the pool at start, then changed only by the mutation path
 * (mutation/mutations.ts) once a mutation is stored. Reads never touch disk. Not thread-safe
 * by itself: mutations are serialised by the mutation path's locks.
 */
export interface IndexedCommit {
  readonly id: string;
  readonly seq: number;
  readonly meta: CommitMetaRecord;
}

export interface IndexedBranch {
  label: BranchLabel;
  /** All own commits in the pool, ascending seq (hidden ones included). */
  commits: IndexedCommit[];
}

export interface IndexedDot {
  readonly id: string;
  info: DotInfo;
  /** branch name → fsId (master included). */
  readonly branches: Map<string, string>;
}

export class DotIndex {
  readonly dots = new Map<string, IndexedDot>();
  readonly #byName = new Map<string, string>();
  readonly branches = new Map<string, IndexedBranch>();

  static nameKey(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  dotIdByName(namespace: string, name: string): string | undefined {
    return this.#byName.get(DotIndex.nameKey(namespace, name));
  }

  requireDot(namespace: string, name: string): IndexedDot {
    const id = this.dotIdByName(namespace, name);
    const dot = id === undefined ? undefined : this.dots.get(id);
    if (!dot) {
      throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem named '${namespace}/${name}'`, {
        hint: "list dots with 'dm list'",
      });
    }
    return dot;
  }

  requireBranchId(dot: IndexedDot, branch: string): string {
    const fsId = dot.branches.get(branch);
    if (fsId === undefined) {
      throw new DotmeshError('BRANCH_NOT_FOUND', `Branch does not exist: ${branch}`, {
        hint: `list the branches of ${dot.info.namespace}/${dot.info.name} with 'dm branch'`,
        data: { dotId: dot.id, branch },
      });
    }
    return fsId;
  }

  requireBranch(fsId: string): IndexedBranch {
    const b = this.branches.get(fsId);
    if (!b) throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`);
    return b;
  }

  addDot(id: string, info: DotInfo): IndexedDot {
    const dot: IndexedDot = { id, info, branches: new Map() };
    this.dots.set(id, dot);
    this.#byName.set(DotIndex.nameKey(info.namespace, info.name), id);
    return dot;
  }

  addBranch(label: BranchLabel, commits: IndexedCommit[]): void {
    this.branches.set(label.fsId, { label, commits });
    this.dots.get(label.dotId)?.branches.set(label.branch, label.fsId);
  }

  /** A dot's info changed (collaborators); the master label carries it too. */
  setDotInfo(dotId: string, info: DotInfo): void {
    const dot = this.dots.get(dotId);
    if (dot) dot.info = info;
  }

  /** A branch's label changed; a renamed branch moves under its new name. */
  setLabel(label: BranchLabel): void {
    const b = this.requireBranch(label.fsId);
    const dot = this.dots.get(label.dotId);
    if (dot && b.label.branch !== label.branch) {
      if (dot.branches.get(b.label.branch) === label.fsId) dot.branches.delete(b.label.branch);
      dot.branches.set(label.branch, label.fsId);
    }
    b.label = label;
  }

  addCommit(fsId: string, commit: IndexedCommit): void {
    this.requireBranch(fsId).commits.push(commit);
  }

  dropCommits(fsId: string, commitIds: readonly string[]): void {
    const b = this.requireBranch(fsId);
    const drop = new Set(commitIds);
    b.commits = b.commits.filter((c) => !drop.has(c.id));
  }

  removeBranch(fsId: string): void {
    const b = this.branches.get(fsId);
    if (!b) return;
    this.branches.delete(fsId);
    const dot = this.dots.get(b.label.dotId);
    if (dot && dot.branches.get(b.label.branch) === fsId) dot.branches.delete(b.label.branch);
  }

  removeDot(dotId: string): void {
    const dot = this.dots.get(dotId);
    if (!dot) return;
    for (const fsId of dot.branches.values()) this.branches.delete(fsId);
    this.dots.delete(dotId);
    const key = DotIndex.nameKey(dot.info.namespace, dot.info.name);
    if (this.#byName.get(key) === dotId) this.#byName.delete(key);
  }

  findCommit(ref: CommitOrigin): IndexedCommit | undefined {
    return this.branches.get(ref.fsId)?.commits.find((c) => c.id === ref.commitId);
  }

  /** The newest commit of a branch's history: its newest visible own commit, else its origin. */
  head(fsId: string): CommitOrigin | null {
    const b = this.requireBranch(fsId);
    return branchHead(fsId, b.commits, b.label.hiddenCommits, b.label.origin);
  }

  /** The branch's history oldest first, following parent links across branches. */
  history(fsId: string): Array<CommitOrigin & { readonly commit: IndexedCommit }> {
    return this.historyFrom(this.head(fsId));
  }

  /** The history that ends at `head` (any commit held here), oldest first. */
  historyFrom(head: CommitOrigin | null): Array<CommitOrigin & { readonly commit: IndexedCommit }> {
    return historyFrom(
      head,
      (ref) => this.findCommit(ref),
      (commit) => commit.meta.parent,
    );
  }

  /** Whether commit `ref` was deleted with DeleteCommit (kept, hidden, while a history passes through it). */
  isDeletedCommit(ref: CommitOrigin): boolean {
    return this.branches.get(ref.fsId)?.label.deletedCommits?.includes(ref.commitId) ?? false;
  }

  /**
   * The part of the history that ends at `head` that listings show and count: deleted commits
   * left out (historyFrom keeps them: transfers and parents need them).
   */
  listedHistoryFrom(head: CommitOrigin | null): Array<CommitOrigin & { readonly commit: IndexedCommit }> {
    return this.historyFrom(head).filter((h) => !this.isDeletedCommit(h));
  }

  /** listedHistoryFrom the branch's head. */
  listedHistory(fsId: string): Array<CommitOrigin & { readonly commit: IndexedCommit }> {
    return this.listedHistoryFrom(this.head(fsId));
  }

  commitRecords(fsId: string): CommitRecord[] {
    return this.listedHistory(fsId).map((h) => ({ id: h.commitId, metadata: h.commit.meta.metadata }));
  }

  /** Whether a commit id is used anywhere in the dot (ids must be new in the dot). */
  dotHasCommit(dot: IndexedDot, commitId: string): boolean {
    for (const fsId of dot.branches.values()) {
      if (this.branches.get(fsId)?.commits.some((c) => c.id === commitId)) return true;
    }
    return false;
  }

  masterBranchId(dot: IndexedDot): string {
    return dot.branches.get(MASTER_BRANCH) ?? dot.id;
  }

  /** Dots in a stable order (namespace, then name). */
  sortedDots(): IndexedDot[] {
    return [...this.dots.values()].sort((a, b) =>
      a.info.namespace === b.info.namespace
        ? a.info.name.localeCompare(b.info.name)
        : a.info.namespace.localeCompare(b.info.namespace),
    );
  }
}
