import type { IOptions } from 'etcd3';

/** The PEM material of an etcd client: the CA (enables TLS), and a client certificate and key. */
export interface EtcdTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** The etcd3 client's `credentials` option for `tls` (none without a CA: plain http). */
export function etcdCredentials(tls: EtcdTls): Pick<IOptions, 'credentials'> {
  if (tls.ca === undefined) return {};
  return {
    credentials: {
      rootCertificate: tls.ca,
      ...(tls.key === undefined ? {} : { privateKey: tls.key }),
      ...(tls.cert === undefined ? {} : { certChain: tls.cert }),
    },
  };
}
