import { DotmeshError } from './errors.ts';
import { validateName } from './names.ts';

/** The StorageClass parameter naming which Kubernetes namespaces may reach which Dotmesh namespaces. */
export const ALLOWLIST_PARAMETER = 'dotmeshNamespaceAllowlist';
/** The Kubernetes-namespace entry that applies to every Kubernetes namespace. */
const ANY = '*';
/** A Kubernetes namespace name (RFC 1123 label). */
const K8S_NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Which Dotmesh namespaces the PVCs of each Kubernetes namespace may name (their
 * `dotmeshNamespace` annotation), beyond the class's own `dotmeshNamespace`, which every PVC of
 * the class may use. The parameter's text: entries separated by `;` or newlines, each
 * `<kubernetes namespace or *>=<dotmesh namespace>[,<dotmesh namespace>...]`; spaces around
 * the separators are ignored. Example: `team-a=alice,bob; *=shared`.
 */
export class NamespaceAllowlist {
  readonly #entries: ReadonlyMap<string, ReadonlySet<string>>;

  private constructor(entries: ReadonlyMap<string, ReadonlySet<string>>) {
    this.#entries = entries;
  }

  /** Parses the parameter (absent or empty: nothing beyond the class's own namespace); throws INVALID_ARGUMENT naming the bad entry. */
  static parse(text: string | undefined): NamespaceAllowlist {
    const entries = new Map<string, Set<string>>();
    for (const raw of (text ?? '').split(/[;\n]/)) {
      const entry = raw.trim();
      if (entry === '') continue;
      const eq = entry.indexOf('=');
      const k8sNamespace = eq < 0 ? '' : entry.slice(0, eq).trim();
      const dotmesh =
        eq < 0
          ? []
          : entry
              .slice(eq + 1)
              .split(',')
              .map((n) => n.trim());
      if ((k8sNamespace !== ANY && !K8S_NAMESPACE.test(k8sNamespace)) || dotmesh.length === 0) {
        throw new DotmeshError('INVALID_ARGUMENT', `${ALLOWLIST_PARAMETER}: bad entry ${JSON.stringify(entry.slice(0, 100))}`, {
          hint: 'write entries as <kubernetes namespace or *>=<dotmesh namespace>[,...], separated by ";"',
        });
      }
      const set = entries.get(k8sNamespace) ?? new Set<string>();
      for (const ns of dotmesh) set.add(validateName('namespace', ns));
      entries.set(k8sNamespace, set);
    }
    return new NamespaceAllowlist(entries);
  }

  /** Whether PVCs of `k8sNamespace` may name `dotmeshNamespace` (the class's own one is checked by the caller). */
  allows(k8sNamespace: string, dotmeshNamespace: string): boolean {
    return (
      this.#entries.get(k8sNamespace)?.has(dotmeshNamespace) === true || this.#entries.get(ANY)?.has(dotmeshNamespace) === true
    );
  }
}
