import { DotmeshError, type DotName, MASTER_BRANCH, parseDotName, validateName } from '@dotmesh/core';
import { usage } from '../command.ts';
import { type DmRemote, upstreamOf } from '../config.ts';
import { type CommandContext, NO_CURRENT_DOT } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * Argument resolution of `dm push|pull|clone <remote> [<dot> [<branch>]]`, as the original
 * client's resolveTransferArgs + RequestTransfer:
 * - 1 argument: the current dot and its current branch; 2: `<dot>` on `master`; 3: both given.
 * - push: `<dot>` is the local dot; the remote dot is `--remote-name`, else the remembered
 *   upstream, else the local dot's name in the peer's user's namespace. Remote branch = local.
 * - pull: as push, data flowing the other way (`<dot>` is still the LOCAL dot).
 * - clone: `<dot>` is the REMOTE dot (namespace defaults to the peer's user); the local dot is
 *   `--local-name`, else the remote dot's name without its namespace.
 * - A local dot named on the command line defaults to the current remote's user's namespace
 *   (`admin` for `local`), as every other `dm` command; the current dot is stored qualified.
 * - The upstream is remembered on the PEER remote's record when none is recorded yet
 *   (`DefaultRemoteVolumes[localNs][localName]`), once the transfer has finished (a failed
 *   one records nothing); an existing one is never overwritten here.
 * Differences: no current dot is an error (the original sent an empty name), more than three
 * arguments are refused (the original ignored them), S3 remotes are not supported.
 */
export type TransferKind = 'push' | 'pull' | 'clone';

export interface TransferFlags {
  readonly remoteName?: string | undefined;
  readonly localName?: string | undefined;
  readonly stashOnDivergence?: boolean | undefined;
}

export interface DotRef extends DotName {
  /** Display form: `master` for the master branch. */
  readonly branch: string;
}

export interface TransferPlan {
  readonly direction: 'push' | 'pull';
  /** The peer remote's name in the config, and its record. */
  readonly peer: string;
  readonly peerRemote: DmRemote;
  readonly local: DotRef;
  readonly remote: DotRef;
  readonly stashDivergence: boolean;
  /** No upstream was recorded for the local dot on the peer: remember `remote`. */
  readonly rememberUpstream: boolean;
}

export const NO_REMOTE_GIVEN =
  "Please specify which remote you want to push/pull/clone to/from. Use 'dm remote -v' to list remotes.";

/** The peer remote by name: a dotmesh remote of the config. */
export function peerRemoteOf(remotes: Record<string, DmRemote>, s3: Record<string, unknown>, name: string): DmRemote {
  const remote = Object.hasOwn(remotes, name) ? remotes[name] : undefined;
  if (remote) return remote;
  if (Object.hasOwn(s3, name)) {
    throw new DotmeshError('UNSUPPORTED', `'${name}' is an S3 remote: transfers with S3 remotes are not supported yet`);
  }
  throw new DotmeshError('INVALID_ARGUMENT', `Unable to find remote '${name}'`, {
    hint: "list remotes with 'dm remote -v', add one with 'dm remote add <name> <user@host[:port]>'",
  });
}

function branchArg(branch: string): string {
  return validateName('branch', branch);
}

/** The dot and branch the positional arguments name (the current ones with just `<remote>`). */
async function dotAndBranch(
  ctx: CommandContext,
  args: readonly string[],
): Promise<{ dot: string; branch: string; current: boolean }> {
  if (args.length === 1) {
    const dot = await ctx.currentDot();
    if (dot === '') throw new DotmeshError('INVALID_ARGUMENT', NO_CURRENT_DOT);
    return { dot, branch: await ctx.currentBranch(dot), current: true };
  }
  return { dot: args[1] ?? '', branch: branchArg(args[2] ?? MASTER_BRANCH), current: false };
}

export async function resolveTransfer(
  ctx: CommandContext,
  kind: TransferKind,
  args: readonly string[],
  flags: TransferFlags,
): Promise<TransferPlan> {
  if (args.length === 0) throw usage(NO_REMOTE_GIVEN);
  if (args.length > 3) throw usage('Too many arguments specified (more than 3).');
  const peer = args[0] ?? '';
  const config = await ctx.loadConfig();
  const peerRemote = peerRemoteOf(config.Remotes, config.S3Remotes, peer);
  await ctx.currentRemote(); // the initiator: fail before remembering or printing anything
  const given = await dotAndBranch(ctx, args);
  const peerNamespace = peerRemote.User;

  let local: DotName;
  let remoteGiven: DotName | undefined;
  if (kind === 'clone') {
    // The positional dot (or the current one) is the remote dot.
    remoteGiven = parseDotName(given.dot, peerNamespace);
    local =
      flags.localName !== undefined && flags.localName !== ''
        ? await parseDotArg(ctx, flags.localName)
        : await parseDotArg(ctx, remoteGiven.name);
  } else {
    local = given.current ? parseDotName(given.dot) : await parseDotArg(ctx, given.dot);
    if (flags.remoteName !== undefined && flags.remoteName !== '') remoteGiven = parseDotName(flags.remoteName, peerNamespace);
  }

  const remembered = upstreamOf(peerRemote, local.namespace, local.name);
  let remote: DotName;
  if (remoteGiven) remote = remoteGiven;
  else if (remembered) remote = { namespace: remembered.Namespace, name: remembered.Name };
  else remote = { namespace: validateName('namespace', peerNamespace), name: local.name };

  return {
    direction: kind === 'push' ? 'push' : 'pull',
    peer,
    peerRemote,
    local: { ...local, branch: given.branch },
    remote: { ...remote, branch: given.branch },
    stashDivergence: flags.stashOnDivergence === true,
    rememberUpstream: remembered === undefined,
  };
}

/** `Pushing admin/foo to origin:bob/foo` / `Pulling admin/foo from origin:bob/foo`. */
export function preamble(plan: TransferPlan): string {
  const local = `${plan.local.namespace}/${plan.local.name}`;
  const remote = `${plan.peer}:${plan.remote.namespace}/${plan.remote.name}`;
  return plan.direction === 'push' ? `Pushing ${local} to ${remote}` : `Pulling ${local} from ${remote}`;
}
