import { join, resolve } from 'node:path';

/** The repository's root, seen from bench/src. */
const REPO = resolve(import.meta.dirname, '../..');
/** The user's Kubernetes guide, whose manifests the Kubernetes benchmarks install as users do. */
export const KUBERNETES_DOC = join(REPO, 'docs/kubernetes.md');
/** The built bundles (`npm run build`) the Kubernetes benchmarks make their images from. */
export const DIST = join(REPO, 'dist');
