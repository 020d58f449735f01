import { readFile, rm, writeFile } from 'node:fs/promises';
import { pid1IsSystemd, run } from './system.ts';

/**
 * The systemd unit that runs dotmesh-server: starts it at boot, restarts it after a crash.
 * Written by `dm cluster init` only when PID 1 is systemd and --no-systemd is not given. There
 * is one per host, for one pool: every command acts on it only when its ExecStart runs that
 * pool's config file (`unitRunsConfig`), so a second cluster on the host (a test's, say) never
 * starts, stops, rewrites or removes another's unit.
 */
export const UNIT_NAME = 'dotmesh-server.service';
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;

/** Quotes one argument for an ExecStart= line. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

export function unitText(argv: readonly string[]): string {
  return `[Unit]
Description=Dotmesh server (git for container data)
Documentation=https://github.com/dotmesh-io/dotmesh
After=network-online.target local-fs.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${argv.map(quote).join(' ')}
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
`;
}

/** Writes the unit for `argv` (which ends in `--config <file>`), reloads systemd and enables it. */
export async function installUnit(argv: readonly string[]): Promise<void> {
  await writeFile(UNIT_PATH, unitText(argv), { mode: 0o644 });
  await run('systemctl', ['daemon-reload']);
  await run('systemctl', ['enable', UNIT_NAME]);
}

/** Is the installed unit the one of the server config `configFile`? */
export async function unitRunsConfig(configFile: string): Promise<boolean> {
  const text = await readFile(UNIT_PATH, 'utf8').catch(() => '');
  const execStart = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? '';
  return execStart.endsWith(` --config ${quote(configFile)}`);
}

/** Does systemd run this cluster's server (PID 1 is systemd and the unit is this config's)? */
export async function managedBySystemd(configFile: string): Promise<boolean> {
  return (await pid1IsSystemd()) && (await unitRunsConfig(configFile));
}

/** Disables, stops and removes the unit of `configFile`; false when there was none (or it is another config's). */
export async function removeUnit(configFile: string): Promise<boolean> {
  if (!(await unitRunsConfig(configFile))) return false;
  await run('systemctl', ['disable', '--now', UNIT_NAME]).catch(() => undefined);
  await rm(UNIT_PATH, { force: true });
  await run('systemctl', ['daemon-reload']).catch(() => undefined);
  return true;
}
