import { readFile } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import { EmbeddedStore, type Store } from '@dotmesh/store';

/**
 * Opens the cluster store the config names: the embedded store file, or etcd (its TLS files
 * read here, once). etcd unreachable → UNAVAILABLE naming the endpoints; an unreadable
 * certificate file → INVALID_ARGUMENT naming the file.
 */
export async function openConfiguredStore(
  config: Pick<
    ServerConfig,
    'store' | 'storeFile' | 'etcdEndpoints' | 'etcdCaFile' | 'etcdCertFile' | 'etcdKeyFile' | 'etcdPrefix' | 'etcdWriteTimeoutMs'
  >,
): Promise<Store> {
  if (config.store === 'embedded') return EmbeddedStore.open({ path: config.storeFile });
  // Loaded on demand: the etcd client (gRPC) is big and only the etcd store needs it.
  const { EtcdStore } = await import('@dotmesh/store/etcd');
  const [ca, cert, key] = await Promise.all([
    readPem(config.etcdCaFile, 'etcdCaFile'),
    readPem(config.etcdCertFile, 'etcdCertFile'),
    readPem(config.etcdKeyFile, 'etcdKeyFile'),
  ]);
  return EtcdStore.open({
    endpoints: config.etcdEndpoints,
    prefix: config.etcdPrefix,
    writeTimeoutMs: config.etcdWriteTimeoutMs,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  });
}

async function readPem(file: string | null, field: string): Promise<Buffer | undefined> {
  if (file === null) return undefined;
  try {
    return await readFile(file);
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot read ${field} ${file}: ${(e as Error).message}`, {
      hint: 'give a readable PEM file (dm cluster init --etcd-ca-file/--etcd-cert-file/--etcd-key-file)',
    });
  }
}
