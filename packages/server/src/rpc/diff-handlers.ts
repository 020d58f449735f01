import type { Caller } from '../dots/caller.ts';
import { mountCommit } from '../dots/commit-access.ts';
import type { DotContext } from '../dots/context.ts';
import { defaultSubdotView, diffCommits, diffLiveVsHead, toWire } from '../dots/diff.ts';
import { lastModified, rfc3339 } from '../dots/last-modified.ts';
import { requireVisibleFs } from '../dots/views.ts';
import type { HandlerTable } from './handlers.ts';

/** Handlers of the inspection methods: diffs, LastModified, MountCommit. */
export function diffHandlers(ctx: DotContext): Pick<HandlerTable, 'Diff' | 'DiffCommits' | 'LastModified' | 'MountCommit'> {
  return {
    Diff: async (caller: Caller, p) => ({
      Files: defaultSubdotView(await diffLiveVsHead(ctx, requireVisibleFs(ctx, caller, p.FilesystemID))),
    }),
    DiffCommits: async (caller, p) => ({
      Files: toWire(
        await diffCommits(ctx, caller, {
          namespace: p.Namespace,
          name: p.Name,
          branch: p.Branch,
          fromCommit: p.FromCommit,
          toCommit: p.ToCommit,
        }),
      ),
    }),
    LastModified: async (caller, p) => ({ Time: rfc3339(await lastModified(ctx, caller, p.Namespace, p.Name)) }),
    MountCommit: async (caller, p) => mountCommit(ctx, caller, p.FilesystemId, p.CommitId),
  };
}
