import type { CallParamsOf } from '@dotmesh/rpc';

/**
 * A `Transfer` of dot `name` in the admin namespace (the same name on both sides, default
 * branches) with the server at 127.0.0.1:`port` over plain HTTP, as that server's admin.
 */
export function transferRequest(o: {
  readonly port: number;
  readonly apiKey: string;
  readonly direction: 'push' | 'pull';
  readonly name: string;
}): CallParamsOf<'Transfer'> {
  return {
    Peer: '127.0.0.1',
    User: 'admin',
    Port: o.port,
    ApiKey: o.apiKey,
    Direction: o.direction,
    LocalNamespace: 'admin',
    LocalName: o.name,
    LocalBranchName: '',
    RemoteNamespace: 'admin',
    RemoteName: o.name,
    RemoteBranchName: '',
    TargetCommit: '',
    StashDivergence: false,
    PeerCertSha256: '',
    PeerHttps: false,
  };
}
