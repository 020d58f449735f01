import { readFile } from 'node:fs/promises';

/**
 * The manifests users are given live in docs/kubernetes.md, each in the ```yaml block that
 * follows a line `<!-- manifest: NAME ... -->`; tests apply exactly that text (with the
 * replacements they list, such as image names), so the docs cannot drift from what is tested.
 */
export async function manifestFromDoc(docFile: string, name: string): Promise<string> {
  const text = await readFile(docFile, 'utf8');
  const marker = `<!-- manifest: ${name}`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`${docFile} has no manifest ${name} (a line "${marker} -->")`);
  const block = /```yaml\n([\s\S]*?)\n```/.exec(text.slice(at));
  if (!block) throw new Error(`${docFile}: no \`\`\`yaml block after "${marker}"`);
  return `${block[1]}\n`;
}

/** `manifest` with each `from` replaced by its `to`; throws when a `from` is not in it (a stale deviation). */
export function replaceInManifest(manifest: string, replacements: Readonly<Record<string, string>>): string {
  let out = manifest;
  for (const [from, to] of Object.entries(replacements)) {
    if (!out.includes(from)) throw new Error(`the manifest no longer contains ${JSON.stringify(from)}`);
    out = out.replaceAll(from, to);
  }
  return out;
}
