import { DotmeshError } from '@dotmesh/core';
import { DEFAULT_JOIN_TOKEN_TTL_SECONDS, type JoinTokens } from '../cluster/join-tokens.ts';
import type { EtcdMemberControl } from '../etcd/member-control.ts';
import type { HandlerTable } from './handlers.ts';

/** Where hosts join through this node: its node-to-node `host:port` and the cluster CA's pin. */
export interface JoinPoint {
  readonly address: string;
  readonly caHash: string;
  /** The cluster CA's certificate (PEM), as GET /join/v1/ca presents it. */
  readonly caCertificate: string;
  /** Whether this node holds the CA's key (so hosts can join through it); absent: it does not. */
  readonly holdsCaKey?: () => Promise<boolean>;
}

/**
 * CreateJoinToken, ListJoinTokens, DeleteJoinToken, RemoveEtcdMember, EtcdMembers, ClusterCa (admin
 * only, by the method table; ours, not the original's). ClusterCa gives the cluster CA and its pin
 * (what the operator publishes for `dm remote add --trust-ca`) and whether this node holds the CA
 * key (HoldsCaKey: hosts can join through it; the operator makes join Secrets through such a
 * node); UNSUPPORTED like CreateJoinToken.
 * RemoveEtcdMember removes a node's managed etcd member, EtcdMembers lists the members (both
 * UNSUPPORTED on an etcd Dotmesh does not run). A token is made on a node of a cluster of several nodes (`joinPoint`
 * absent: UNSUPPORTED); TtlSeconds 0 takes the default (24 h), Uses 0 = unlimited until it expires.
 */
export function joinTokenHandlers(deps: {
  readonly tokens: JoinTokens;
  readonly joinPoint: () => JoinPoint | undefined;
  readonly etcdMembers: EtcdMemberControl | undefined;
}): Pick<
  HandlerTable,
  'CreateJoinToken' | 'ListJoinTokens' | 'DeleteJoinToken' | 'RemoveEtcdMember' | 'EtcdMembers' | 'ClusterCa'
> {
  const joinPoint = (): JoinPoint => {
    const point = deps.joinPoint();
    if (!point) {
      throw new DotmeshError('UNSUPPORTED', 'this node serves no node-to-node endpoint: hosts cannot join it', {
        hint: 'make the cluster with dm cluster init --store etcd (a cluster meant to grow), then make tokens there',
      });
    }
    return point;
  };
  return {
    CreateJoinToken: async (_caller, p) => {
      const point = joinPoint();
      const { token, info } = await deps.tokens.create({
        ttlSeconds: p.TtlSeconds === 0 ? DEFAULT_JOIN_TOKEN_TTL_SECONDS : p.TtlSeconds,
        uses: p.Uses,
        description: p.Description,
      });
      return { ...info, Token: token, JoinAddress: point.address, CaHash: point.caHash };
    },
    ClusterCa: async () => {
      const point = joinPoint();
      const HoldsCaKey = (await point.holdsCaKey?.()) ?? false;
      return { Certificate: point.caCertificate, CaHash: point.caHash, HoldsCaKey };
    },
    ListJoinTokens: async () => deps.tokens.list(),
    DeleteJoinToken: async (_caller, p) => deps.tokens.delete(p.Id),
    RemoveEtcdMember: async (_caller, p) => {
      const members = managed(deps.etcdMembers, 'remove', 'remove the member with etcdctl member remove, if the node ran one');
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(p.Node)) {
        throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(p.Node.slice(0, 80))} is not a node id`);
      }
      const r = await members.remove(p.Node);
      return { Removed: r.removed, Members: r.members };
    },
    EtcdMembers: async () => {
      const members = await managed(deps.etcdMembers, 'list', 'list them with etcdctl member list').list();
      return {
        Members: members.map((m) => ({
          Id: m.id,
          Name: m.name,
          Learner: m.learner,
          PeerUrls: [...m.peerUrls],
          ClientUrls: [...m.clientUrls],
        })),
      };
    },
  };
}

/** The managed etcd's member control, or UNSUPPORTED when the cluster's etcd is not Dotmesh's. */
function managed(members: EtcdMemberControl | undefined, verb: string, hint: string): EtcdMemberControl {
  if (members) return members;
  throw new DotmeshError('UNSUPPORTED', `this cluster's etcd is not run by Dotmesh: its members are not Dotmesh's to ${verb}`, {
    hint,
  });
}
