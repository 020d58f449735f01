import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';

/**
 * `~/.dotmesh/known_servers`: the https dotmesh servers this client talks to, one per line,
 * beside `config` (which the original client rewrites, dropping keys it does not know, so
 * nothing of ours can live there):
 *
 *     # comment
 *     127.0.0.1:32606 AB:CD:…:EF      a pinned certificate (SHA-256 of the leaf's DER)
 *     dotmesh.example.com:443 ca      verified by the CAs Node and the system trust
 *     10.0.0.2:32606 cluster-ca:sha256:…   issued by the cluster CA of that pin (any node)
 *
 * A remote whose `host:port` has a line here is reached over https with that trust; any
 * other remote over plain http as the original (port 443 excepted: https, CA-verified).
 * Written 0600 in the 0700 config directory, atomically; unknown lines are kept.
 */
export type KnownTrust =
  | { readonly kind: 'pin'; readonly fingerprint: string }
  | { readonly kind: 'ca' }
  | { readonly kind: 'cluster-ca'; readonly caPin: string };

export const KNOWN_SERVERS_FILE = 'known_servers';

export function knownServersPath(configPath: string): string {
  return join(dirname(configPath), KNOWN_SERVERS_FILE);
}

/** `host:port`, IPv6 hosts bracketed, lower-case. */
export function serverKey(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return `${bare.includes(':') ? `[${bare}]` : bare}:${port}`;
}

export class KnownServers {
  readonly path: string;
  private lines: string[];

  constructor(path: string, text = '') {
    this.path = path;
    this.lines = text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  }

  static async load(path: string): Promise<KnownServers> {
    try {
      return new KnownServers(path, await readFile(path, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new KnownServers(path);
      throw new DotmeshError('INVALID_ARGUMENT', `cannot read ${path}: ${(e as Error).message}`);
    }
  }

  get(host: string, port: number): KnownTrust | undefined {
    const key = serverKey(host, port);
    for (const line of this.lines) {
      const [k, value] = line.trim().split(/\s+/);
      if (k !== key || value === undefined) continue;
      if (value === 'ca') return { kind: 'ca' };
      if (value.startsWith('cluster-ca:')) return { kind: 'cluster-ca', caPin: value.slice('cluster-ca:'.length) };
      return { kind: 'pin', fingerprint: value };
    }
    return undefined;
  }

  /** Replaces the line of host:port (or adds one). */
  set(host: string, port: number, trust: KnownTrust): void {
    const key = serverKey(host, port);
    const value = trust.kind === 'ca' ? 'ca' : trust.kind === 'cluster-ca' ? `cluster-ca:${trust.caPin}` : trust.fingerprint;
    const line = `${key} ${value}`;
    const at = this.lines.findIndex((l) => l.trim().split(/\s+/)[0] === key);
    if (at >= 0) this.lines[at] = line;
    else this.lines.push(line);
  }

  text(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }

  async save(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    await writeFile(tmp, this.text(), { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }
}
