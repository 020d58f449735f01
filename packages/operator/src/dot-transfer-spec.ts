import { DotmeshError, deMasterify, isDotmeshError, normalizeBranch, parseDotName, validateName } from '@dotmesh/core';
import type { CallParamsOf } from '@dotmesh/rpc';
import type { V1Secret } from '@kubernetes/client-node';
import { DEFAULT_API_KEY_KEY, type DotRemoteObject, type DotTransferObject, type TransferErrorStatus } from './dot-resources.ts';

/**
 * A DotTransfer and the DotRemote it names, checked into the `Transfer` call a server of this
 * cluster runs (it dials the remote): every field a user wrote is validated here, before any
 * call, and a problem is a structured error naming the field and what to do (the transfer's
 * status shows it; nothing is transferred). The API key is not part of the plan: it is read
 * from the Secret (apiKeyFrom) only when the call is made, and goes nowhere else.
 */
export type TransferRequest = CallParamsOf<'Transfer'>;

export interface TransferPlan {
  readonly request: Omit<TransferRequest, 'ApiKey'>;
  readonly secret: { readonly name: string; readonly key: string };
}

const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])$/;
const CA_PIN = /^sha256:[0-9a-f]{64}$/;
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;

function invalid(message: string, hint: string): never {
  throw new DotmeshError('INVALID_ARGUMENT', message, { hint });
}

function text(value: unknown, field: string, hint: string): string {
  if (typeof value !== 'string' || value === '') invalid(`${field} must be a non-empty string`, hint);
  return value;
}

/** `f()`, its DotmeshError (an invalid name) restated with the field it is in. */
export function named<T>(field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (!isDotmeshError(e)) throw e;
    throw new DotmeshError(e.code, `${field}: ${e.message}`, { hint: e.hint ?? 'names are 1 to 64 letters, digits, "_" or "-"' });
  }
}

function dotField(value: unknown, field: string, what: string): { namespace: string; name: string } {
  const given = text(value, field, `${what}, as [namespace/]name`);
  return named(field, () => parseDotName(given));
}

/** A thrown error as a status error (a DotmeshError's code, message and hint; anything else INTERNAL). */
export function errorStatus(e: unknown): TransferErrorStatus {
  if (isDotmeshError(e)) return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  return { code: 'INTERNAL', message: String((e as Error)?.message ?? e) };
}

/** The DotTransfer `t` with its remote `remote` (undefined: no DotRemote of that name) as a plan; throws DotmeshError. */
export function transferPlan(t: DotTransferObject, remote: DotRemoteObject | undefined): TransferPlan {
  const spec = t.spec ?? {};
  const remoteName = text(spec.remote, 'spec.remote', 'name a DotRemote of this namespace');
  if (!OBJECT_NAME.test(remoteName))
    invalid(`spec.remote ${JSON.stringify(remoteName.slice(0, 80))} is not an object name`, 'name a DotRemote of this namespace');
  const direction = spec.direction;
  if (direction !== 'push' && direction !== 'pull')
    invalid(
      `spec.direction must be push or pull, not ${JSON.stringify(direction)}`,
      'push: from here to the remote; pull: from the remote to here',
    );
  const dot = dotField(spec.dot, 'spec.dot', 'the dot here');
  const remoteDot = spec.remoteDot === undefined ? dot : dotField(spec.remoteDot, 'spec.remoteDot', 'the dot on the remote');
  const branch = (value: unknown, field: string) => {
    if (value === undefined || value === '') return '';
    const given = text(value, field, 'a branch name; leave it out for master');
    return deMasterify(named(field, () => normalizeBranch(given)));
  };
  const localBranch = branch(spec.branch, 'spec.branch');
  const remoteBranch = spec.remoteBranch === undefined ? localBranch : branch(spec.remoteBranch, 'spec.remoteBranch');
  if (spec.stashDivergence !== undefined && typeof spec.stashDivergence !== 'boolean') {
    invalid(
      'spec.stashDivergence must be true or false',
      'true keeps the receiving side’s diverged commits on a -DIVERGED- branch',
    );
  }
  if (!remote) {
    invalid(
      `DotRemote ${t.metadata.namespace}/${remoteName} does not exist`,
      `create the DotRemote in namespace ${t.metadata.namespace}, then a new DotTransfer`,
    );
  }
  const r = remoteSettings(remote);
  return {
    request: {
      Peer: r.host,
      User: r.user,
      Port: r.port,
      Direction: direction,
      LocalNamespace: dot.namespace,
      LocalName: dot.name,
      LocalBranchName: localBranch,
      RemoteNamespace: remoteDot.namespace,
      RemoteName: remoteDot.name,
      RemoteBranchName: remoteBranch,
      TargetCommit: '',
      StashDivergence: spec.stashDivergence === true,
      PeerCertSha256: '',
      PeerHttps: !r.plainHttp,
      ...(r.caPin ? { PeerCaPin: r.caPin } : {}),
    },
    secret: r.secret,
  };
}

export interface RemoteSettings {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly caPin?: string;
  readonly plainHttp: boolean;
  readonly secret: { readonly name: string; readonly key: string };
}

/**
 * A DotRemote's spec, checked: host (a name, IPv4 or [IPv6]), port, user (default admin), and
 * how its certificate is trusted: `caPin` (HTTPS checked against that CA), `plainHttp: true`
 * (no TLS), or neither (HTTPS checked by the system CAs); both is refused.
 */
export function remoteSettings(remote: DotRemoteObject): RemoteSettings {
  const spec = remote.spec ?? {};
  const where = `DotRemote ${remote.metadata.namespace}/${remote.metadata.name}`;
  const host = text(spec.host, `${where}: spec.host`, 'the remote cluster’s address: a host name, an IPv4 address or [IPv6]');
  if (!HOST.test(host) || host.length > 253) {
    invalid(
      `${where}: spec.host ${JSON.stringify(host.slice(0, 80))} is not a host name or address`,
      'a host name, an IPv4 address or [IPv6]',
    );
  }
  const port = spec.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    invalid(
      `${where}: spec.port must be a port number (1-65535)`,
      'the remote’s API port: 32606 (HTTPS) or 32607 (HTTP) for a Dotmesh cluster on Kubernetes',
    );
  }
  const user =
    spec.user === undefined ? 'admin' : validateName('namespace', text(spec.user, `${where}: spec.user`, 'a Dotmesh user name'));
  const plainHttp = spec.plainHttp === true;
  if (spec.plainHttp !== undefined && typeof spec.plainHttp !== 'boolean')
    invalid(`${where}: spec.plainHttp must be true or false`, 'leave it out for HTTPS');
  let caPin: string | undefined;
  if (spec.caPin !== undefined) {
    caPin = text(spec.caPin, `${where}: spec.caPin`, 'sha256:<64 hex digits>').toLowerCase();
    if (!CA_PIN.test(caPin))
      invalid(`${where}: spec.caPin is not sha256:<64 hex digits>`, 'the ca-hash of the remote’s ConfigMap dotmesh-cluster-ca');
    if (plainHttp)
      invalid(`${where}: spec.caPin and spec.plainHttp cannot both be set`, 'a CA pin means HTTPS: leave out plainHttp');
  }
  const ref = spec.apiKeySecret ?? {};
  const secretName = text(
    ref.name,
    `${where}: spec.apiKeySecret.name`,
    'the Secret of this namespace holding the remote user’s API key',
  );
  if (!OBJECT_NAME.test(secretName))
    invalid(`${where}: spec.apiKeySecret.name is not an object name`, 'the name of a Secret of this namespace');
  const key =
    ref.key === undefined ? DEFAULT_API_KEY_KEY : text(ref.key, `${where}: spec.apiKeySecret.key`, 'a key of the Secret');
  if (!SECRET_KEY.test(key)) invalid(`${where}: spec.apiKeySecret.key is not a Secret key`, 'letters, digits, ".", "_" or "-"');
  return { host, port, user, ...(caPin ? { caPin } : {}), plainHttp, secret: { name: secretName, key } };
}

/** The API key in `secret` (undefined: no such Secret) under the plan's key; throws DotmeshError naming the Secret. */
export function apiKeyFrom(secret: V1Secret | undefined, plan: TransferPlan, namespace: string): string {
  const { name, key } = plan.secret;
  if (!secret) {
    invalid(
      `the Secret ${namespace}/${name} holding the remote’s API key does not exist`,
      `create it (kubectl create secret generic ${name} -n ${namespace} --from-literal=${key}=<API key>), then a new DotTransfer`,
    );
  }
  const value = Buffer.from(secret.data?.[key] ?? '', 'base64')
    .toString('utf8')
    .trim();
  if (value === '') invalid(`the Secret ${namespace}/${name} has no key ${key}`, `put the remote user’s API key under ${key}`);
  return value;
}

/** `text` with every occurrence of `secret` replaced: what may go to a status, an Event or a log. */
export function redact(text: string, secret: string): string {
  return secret.length >= 4 ? text.replaceAll(secret, '<redacted>') : text;
}
