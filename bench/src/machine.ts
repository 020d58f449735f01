import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

/**
 * What the figures were measured on: CPU, cores, RAM, kernel, the disk under `dir` (where the
 * pool files live), Node, and the load average when the report is written. Best effort: a field
 * that cannot be read says "unknown".
 */
export function describeMachine(dir: string): Record<string, string> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: String(cpu.length),
    ram: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    kernel: release(),
    os: osName(),
    disk: diskUnder(dir),
    node: process.version,
    // Other work on a shared machine skews every figure: keep the load beside them.
    loadavg: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function diskUnder(dir: string): string {
  try {
    const [source = '?', fstype = '?'] = execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE', '-T', dir], { encoding: 'utf8' })
      .trim()
      .split(/\s+/);
    const dev = source.replace(/^\/dev\//, '').replace(/\[.*$/, '');
    const sys = `/sys/class/block/${dev}`;
    const rotational = readFileSync(`${sys}/queue/rotational`, 'utf8').trim() === '1' ? 'rotational' : 'non-rotational';
    const bytes = Number(readFileSync(`${sys}/size`, 'utf8').trim()) * 512;
    const model = (() => {
      try {
        return readFileSync(`${sys}/device/model`, 'utf8').trim();
      } catch {
        return dev.startsWith('vd') ? 'virtio block device' : '';
      }
    })();
    return `${source} (${[model, rotational, `${Math.round(bytes / 2 ** 30)} GiB`].filter(Boolean).join(', ')}), ${fstype} under the pool files`;
  } catch {
    return 'unknown';
  }
}
