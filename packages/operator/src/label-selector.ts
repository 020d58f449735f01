/**
 * Kubernetes label selectors as `kubectl get -l` and the API's `labelSelector` read them, parsed
 * once and matched locally (the operator watches every node and decides itself which are
 * selected, so that a relabelled node is noticed the moment its label changes):
 *   `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
 * joined by commas. The empty selector selects everything.
 */
export type Requirement =
  | { readonly key: string; readonly op: 'exists' | 'absent' }
  | { readonly key: string; readonly op: 'in' | 'notin'; readonly values: readonly string[] };

export type LabelSelector = readonly Requirement[];

/** A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
const NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && PREFIX.test(prefix) && NAME.test(key.slice(slash + 1));
}

export function isLabelValue(value: string): boolean {
  return value === '' || NAME.test(value);
}

/** Splits on commas outside parentheses. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((s) => s.trim());
}

/** Parses a selector; throws an Error saying which term is wrong. */
export function parseLabelSelector(text: string): LabelSelector {
  if (text.trim() === '') return [];
  return terms(text).map((term): Requirement => {
    const fail = (why: string): never => {
      throw new Error(`${JSON.stringify(term)}: ${why}`);
    };
    const key = (k: string) => (isLabelKey(k) ? k : fail(`${JSON.stringify(k)} is not a label key`));
    const value = (v: string) => (isLabelValue(v) ? v : fail(`${JSON.stringify(v)} is not a label value`));
    if (term === '') fail('empty term');
    const set = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term);
    if (set) {
      const values = set[3]!.split(',').map((v) => value(v.trim()));
      return { key: key(set[1]!), op: set[2] as 'in' | 'notin', values };
    }
    const eq = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(term);
    if (eq) return { key: key(eq[1]!), op: eq[2] === '!=' ? 'notin' : 'in', values: [value(eq[3]!)] };
    if (term.startsWith('!')) return { key: key(term.slice(1).trim()), op: 'absent' };
    return { key: key(term), op: 'exists' };
  });
}

export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case 'absent':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]!);
      default: // notin
        return !has || !r.values.includes(labels[r.key]!);
    }
  });
}
