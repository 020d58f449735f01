import pkg from '../package.json' with { type: 'json' };

/**
 * The server's version, reported by `dotmesh-server version`, the `Version` RPC and so
 * `dm version`: the `version` of @dotmesh/server's package.json, inlined into the bundle at
 * build time. Bump it there for a release; `dm cluster upgrade` compares it as a semantic version.
 */
export const SERVER_VERSION: string = pkg.version;
