import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { DEFAULT_CLUSTER_PORT } from '@dotmesh/rpc/server-defaults';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import {
  addNodeOptions,
  dockerFlags,
  etcdMemberFlags,
  givenSettings,
  type InitFlags,
  nodeFlags,
  portOption,
  STORE_SETTINGS,
  tlsFlags,
} from './cluster.ts';

/**
 * `dm cluster join <host:port> --ca-hash sha256:<hex> --token-file <file>`: starts this host's
 * node as a node of an existing cluster (see cluster/init.ts `join`), and `dm cluster token
 * create|list|delete`: the tokens hosts join with (made on a node of the cluster).
 */
interface JoinFlags extends InitFlags {
  caHash?: string;
  tokenFile?: string;
}

const CA_HASH_RE = /^sha256:[0-9a-f]{64}$/;
const ADDRESS_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** The token from the file ('-' or none: standard input), trimmed. */
async function readToken(ctx: CommandContext, file: string | undefined): Promise<string> {
  let text: string | null;
  if (file === undefined || file === '-') {
    text = await ctx.io.readLine('Join token: ', { hidden: true, toStderr: true });
  } else {
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new DotmeshError('INVALID_ARGUMENT', `cannot read the join token file ${file}: ${(e as Error).message}`);
    }
  }
  const token = (text ?? '').trim();
  if (token === '') throw usage('no join token given (--token-file <file>, or on standard input)');
  return token;
}

export function registerJoin(cluster: Command, app: CliApp): void {
  const join = cluster
    .command('join')
    .summary('Start a node on this host that joins an existing cluster (with a token and the CA pin)')
    .description(
      `Starts a node on this host as a node of an existing cluster: a btrfs pool and the server, which joins through <host:port> (a node's address and cluster port, as 'dm cluster token create' printed them). Before it sends anything it checks that the cluster's CA is the one pinned by --ca-hash; it then sends the token and certificate requests for keys that never leave this host, and gets back its certificates and where the cluster's etcd is. It never receives the admin password, an API key or the CA's key. The token comes from --token-file (or standard input); the server deletes its copy once it joined. Must run as root.`,
    )
    .usage('<host:port> --ca-hash <pin> --token-file <file> [options]')
    .argument('[args...]');
  addNodeOptions(join)
    .option('--ca-hash <sha256:hex>', "the cluster CA's pin, as 'dm cluster token create' printed it")
    .option('--token-file <file>', 'file holding the join token (- or none: standard input)')
    .option('--cluster-port <n>', `this node's node-to-node endpoint (default ${DEFAULT_CLUSTER_PORT})`, portOption)
    .option('--advertise-address <ip>', "the address other nodes reach this node at (default: --listen's, else the first IPv4)")
    .option(
      '--etcd-cert-file <file>',
      "PEM client certificate for the cluster's etcd, when it asks for one (with --etcd-key-file)",
    )
    .option('--etcd-key-file <file>', 'PEM key of the etcd client certificate')
    .action(
      action<JoinFlags>(app, async (ctx, args, f, cmd) => {
        if (args.length !== 1) throw usage('dm cluster join takes one argument: <host:port> of a node of the cluster.');
        const address = args[0]!;
        if (!ADDRESS_RE.test(address)) {
          throw usage(`${JSON.stringify(address)} is not <host:port> (a node's address and cluster port, e.g. 10.0.0.1:32609)`);
        }
        if (f.caHash === undefined || !CA_HASH_RE.test(f.caHash)) {
          throw usage("--ca-hash sha256:<64 hex digits> is required: the cluster CA's pin ('dm cluster token create' prints it)");
        }
        if ((f.etcdCertFile === undefined) !== (f.etcdKeyFile === undefined))
          throw usage('--etcd-cert-file and --etcd-key-file go together');
        const token = await readToken(ctx, f.tokenFile);
        const { clusterInit, renderClusterInit } = await import('../cluster/init.ts');
        const given = givenSettings(cmd);
        for (const s of [...STORE_SETTINGS, 'join'] as const) given.add(s);
        const result = await clusterInit(ctx, {
          ...nodeFlags(f),
          store: 'etcd',
          etcdEndpoints: [],
          etcdCertFile: f.etcdCertFile === undefined ? null : resolve(f.etcdCertFile),
          etcdKeyFile: f.etcdKeyFile === undefined ? null : resolve(f.etcdKeyFile),
          ...tlsFlags(f),
          ...dockerFlags(f),
          ...etcdMemberFlags(f),
          clusterPort: f.clusterPort ?? DEFAULT_CLUSTER_PORT,
          advertiseAddress: f.advertiseAddress ?? null,
          given,
          join: { address, caHash: f.caHash, token },
        });
        ctx.reporter.result(result, renderClusterInit);
      }),
    );

  cluster
    .command('remove-node')
    .summary("Take a node's branches off it so it can leave the cluster (a live node's move; a gone node's with --force)")
    .argument('[args...]')
    .option('--to <node>', "the live node that gets them (default: the current remote's node)")
    .option('--force', 'a node that is gone: give its branches to --to without handing them over')
    .action(
      action<{ to?: string; force?: boolean }>(app, async (ctx, args, f) => {
        if (args.length !== 1) throw usage('dm cluster remove-node takes one argument: the node id.');
        const { removeNode, renderRemoveNode } = await import('../cluster/remove-node.ts');
        ctx.reporter.result(await removeNode(ctx, { node: args[0]!, to: f.to, force: f.force === true }), renderRemoveNode);
      }),
    );

  const token = cluster.command('token').summary('Make, list or delete the tokens hosts join the cluster with');
  token
    .command('create')
    .summary("Make a join token on the current remote's node and print the 'dm cluster join' command")
    .argument('[args...]')
    .option('--ttl <duration>', 'how long it can be used: e.g. 30m, 24h, 7d', '24h')
    .option('--uses <n>', 'how many joins it allows (0 = any number until it expires)', '1')
    .option('--description <text>', 'what it is for (shown by token list)', '')
    .option('--token-file <file>', 'write the token into this new file (0600) instead of printing it')
    .action(
      action<{ ttl: string; uses: string; description: string; tokenFile?: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster token create takes no arguments (see --help for its options).');
        const { createToken, renderTokenCreated } = await import('../cluster/tokens.ts');
        const uses = Number(f.uses);
        if (!/^\d+$/.test(f.uses)) throw usage(`--uses must be a whole number, not ${JSON.stringify(f.uses)}`);
        const result = await createToken(ctx, { ttl: f.ttl, uses, description: f.description, tokenFile: f.tokenFile ?? null });
        ctx.reporter.result(result, renderTokenCreated);
      }),
    );
  token
    .command('list')
    .summary('List the join tokens that can still be used (never their secrets)')
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('dm cluster token list takes no arguments.');
        const { renderTokens } = await import('../cluster/tokens.ts');
        ctx.reporter.result(await ctx.call('ListJoinTokens', {}), renderTokens);
      }),
    );
  token
    .command('delete')
    .summary('Delete a join token by its id (hosts can no longer join with it)')
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length !== 1) throw usage('dm cluster token delete takes one argument: the token id.');
        const id = args[0]!;
        const deleted = await ctx.call('DeleteJoinToken', { Id: id.split('.')[0] ?? id });
        if (!deleted)
          throw new DotmeshError('INVALID_ARGUMENT', `no join token with id ${id.split('.')[0]}`, {
            hint: 'dm cluster token list shows them',
          });
        ctx.reporter.result({ deleted: id.split('.')[0] }, (r) => [`Deleted join token ${r.deleted}.`]);
      }),
    );
}
