import { rm, writeFile } from 'node:fs/promises';
import { exists, run } from './system.ts';

/**
 * The systemd unit that restarts dotmesh-server at boot. Written only when PID 1 is systemd and
 * --no-systemd is not given; `enable`d but not started (dm cluster init has started the server).
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

export async function installUnit(argv: readonly string[]): Promise<void> {
  await writeFile(UNIT_PATH, unitText(argv), { mode: 0o644 });
  await run('systemctl', ['daemon-reload']);
  await run('systemctl', ['enable', UNIT_NAME]);
}

/** Disables, stops and removes the unit; false when there was none. */
export async function removeUnit(): Promise<boolean> {
  if (!(await exists(UNIT_PATH))) return false;
  await run('systemctl', ['disable', '--now', UNIT_NAME]).catch(() => undefined);
  await rm(UNIT_PATH, { force: true });
  await run('systemctl', ['daemon-reload']).catch(() => undefined);
  return true;
}
