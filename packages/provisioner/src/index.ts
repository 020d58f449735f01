export { ALLOWLIST_PARAMETER, NamespaceAllowlist } from '@dotmesh/core';
export * from './decide.ts';
export { Provisioner, type ProvisionerApi } from './provisioner.ts';
