export { ALLOWLIST_PARAMETER, NamespaceAllowlist } from './allowlist.ts';
export * from './decide.ts';
export { Provisioner, type ProvisionerApi } from './provisioner.ts';
