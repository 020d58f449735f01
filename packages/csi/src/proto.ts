import { existsSync } from 'node:fs';
import { type GrpcObject, loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/**
 * The CSI spec's csi.proto and the kubelet's plugin-registration api.proto are not part of this
 * repository: they are read at run time from the files the deployment provides (the spec's Go
 * module `github.com/container-storage-interface/spec` v1.13.0, and `k8s.io/kubelet` v0.35.8
 * `pkg/apis/pluginregistration/v1/api.proto`; docs/kubernetes.md says where to get them).
 * Field names stay as in the .proto (snake_case), 64-bit integers are numbers, enums their
 * names, and absent fields their defaults.
 */
const LOAD_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true } as const;

export interface CsiServices {
  readonly Identity: ServiceDefinition;
  readonly Controller: ServiceDefinition;
  readonly GroupController: ServiceDefinition;
  readonly Node: ServiceDefinition;
}

export function loadCsiServices(path: string): CsiServices {
  const v1 = packageAt(load(path, 'csi.proto'), ['csi', 'v1']);
  return {
    Identity: service(v1, 'Identity'),
    Controller: service(v1, 'Controller'),
    GroupController: service(v1, 'GroupController'),
    Node: service(v1, 'Node'),
  };
}

/** The kubelet's Registration service (GetInfo, NotifyRegistrationStatus). */
export function loadRegistrationService(path: string): ServiceDefinition {
  return service(packageAt(load(path, 'pluginregistration api.proto'), ['pluginregistration']), 'Registration');
}

function load(path: string, what: string): GrpcObject {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: see docs/kubernetes.md for where to get it`);
  return loadPackageDefinition(loadSync(path, LOAD_OPTIONS));
}

function packageAt(root: GrpcObject, names: readonly string[]): GrpcObject {
  let o: GrpcObject = root;
  for (const n of names) {
    const next = o[n];
    if (!next || typeof next !== 'object' || 'service' in next) throw new Error(`package ${names.join('.')} not in the .proto`);
    o = next as GrpcObject;
  }
  return o;
}

function service(pkg: GrpcObject, name: string): ServiceDefinition {
  const ctor = pkg[name] as { service?: ServiceDefinition } | undefined;
  if (!ctor?.service) throw new Error(`service ${name} not in the .proto`);
  return ctor.service;
}
