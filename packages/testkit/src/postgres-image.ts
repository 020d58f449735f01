import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEBIAN_MIRROR, debootstrapRootfs, ensureCachedFile, imageCacheDir } from './cached-build.ts';
import type { DockerEngine } from './docker.ts';
import { runCommand } from './process.ts';

/**
 * A PostgreSQL 15 image for tests, with no registry: a Debian bookworm rootfs made by
 * `debootstrap`, cached as a tar file, then `docker import`ed into a test's engine.
 */

export const PG_BIN = '/usr/lib/postgresql/15/bin';
export const PG_ENTRYPOINT = '/usr/local/bin/dm-postgres-entrypoint';
export const DEFAULT_PGDATA = '/var/lib/postgresql/data';

/**
 * Runs as root: makes PGDATA (a bind-mounted volume may be root-owned) the postgres user's with
 * mode 0700, then re-executes itself as postgres. As postgres: runs initdb when PGDATA holds no
 * cluster (trust auth, listening everywhere: test use only), then execs the postmaster, which
 * does crash recovery by itself on an existing data dir.
 */
const ENTRYPOINT_SCRIPT = `#!/bin/sh
set -eu
: "\${PGDATA:=${DEFAULT_PGDATA}}"
export PGDATA
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  find "$PGDATA" /run/postgresql ! -user postgres -exec chown postgres:postgres {} +
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  ${PG_BIN}/initdb -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8
  printf 'host all all 0.0.0.0/0 trust\\nhost all all ::/0 trust\\n' >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\\n" >>"$PGDATA/postgresql.conf"
fi
exec ${PG_BIN}/postgres -D "$PGDATA" "$@"
`;

/** Everything that decides the rootfs's content: a change here gives a new cache file name. */
const RECIPE = {
  suite: 'bookworm',
  variant: 'minbase',
  include: ['postgresql', 'postgresql-contrib'],
  prune: [
    'var/cache/apt',
    'var/lib/apt/lists',
    'usr/share/doc',
    'usr/share/man',
    'usr/share/info',
    'usr/share/locale',
    'var/lib/postgresql/15/main',
    'etc/postgresql/15/main',
  ],
  entrypoint: ENTRYPOINT_SCRIPT,
};
const RECIPE_VERSION = 1;

export function postgresTarballName(): string {
  const key = createHash('sha256').update(JSON.stringify(RECIPE)).digest('hex').slice(0, 12);
  return `postgres-${RECIPE.suite}-v${RECIPE_VERSION}-${key}.tar`;
}

export interface PostgresRootfsOptions {
  /** Default `$DOTMESH_TEST_IMAGE_CACHE`, else /var/cache/dotmesh-test/images. */
  cacheDir?: string;
  /** Default http://deb.debian.org/debian (the machine's apt mirror). */
  mirror?: string;
  /** Progress lines (phases and their times). */
  log?: (s: string) => void;
}

const BUILD_TIMEOUT_MS = 10 * 60_000;

/**
 * Returns the path of a cached tar of a Debian bookworm rootfs with PostgreSQL 15 (server,
 * client, contrib, pgbench) and the entrypoint script, building it when missing (about a minute
 * with a warm apt mirror). Safe to call concurrently (see ensureCachedFile).
 */
export function ensurePostgresRootfsTarball(opts: PostgresRootfsOptions = {}): Promise<string> {
  const log = opts.log ?? (() => {});
  return ensureCachedFile({
    target: join(imageCacheDir(opts.cacheDir), postgresTarballName()),
    timeoutMs: BUILD_TIMEOUT_MS,
    log,
    build: (work) => buildTarball(work, opts.mirror ?? DEBIAN_MIRROR, log),
  });
}

async function buildTarball(work: string, mirror: string, log: (s: string) => void): Promise<string> {
  const root = join(work, 'root');
  const { suite, variant, include, prune } = RECIPE;
  await debootstrapRootfs({ root, suite, variant, include, prune, mirror, timeoutMs: BUILD_TIMEOUT_MS, log });
  if (!existsSync(join(root, PG_BIN.slice(1), 'pgbench'))) throw new Error(`the rootfs has no ${PG_BIN}/pgbench`);
  const entry = join(root, PG_ENTRYPOINT.slice(1));
  await writeFile(entry, ENTRYPOINT_SCRIPT);
  await chmod(entry, 0o755);
  const t0 = Date.now();
  const out = join(work, 'rootfs.tar');
  await runCommand('tar', ['--numeric-owner', '-C', root, '-cf', out, '.'], { timeoutMs: BUILD_TIMEOUT_MS });
  const { size } = await stat(out);
  log(`tar took ${Math.round((Date.now() - t0) / 1000)} s (${Math.round(size / 2 ** 20)} MiB)`);
  return out;
}

/**
 * Imports the PostgreSQL image into `engine` (building the cached rootfs if needed) and returns
 * its name. A container of it runs postgres as the postgres user on `$PGDATA` (default
 * /var/lib/postgresql/data), initialising it when empty. `docker stop` sends SIGTERM, postgres's
 * "smart" shutdown, which waits for clients to leave (dockerd 20.10's import takes no STOPSIGNAL).
 */
export async function importPostgresImage(
  engine: DockerEngine,
  name = 'dm-postgres',
  opts: PostgresRootfsOptions = {},
): Promise<string> {
  const tarball = await ensurePostgresRootfsTarball(opts);
  const changes = [
    `ENTRYPOINT ["${PG_ENTRYPOINT}"]`,
    `ENV PATH=${PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    `ENV PGDATA=${DEFAULT_PGDATA}`,
    'ENV LANG=C.UTF-8',
    'EXPOSE 5432',
  ];
  await engine.docker(['import', ...changes.flatMap((c) => ['--change', c]), tarball, name], { timeoutMs: 600_000 });
  return name;
}

/**
 * Waits until postgres in `container` accepts connections (`pg_isready`); fails at once, with
 * the container's log, when the container stops running.
 */
export async function waitForPostgres(engine: DockerEngine, container: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout: running } = await engine.docker(['inspect', '--format', '{{.State.Running}}', container]);
    if (running.trim() !== 'true') {
      const logs = await engine.docker(['logs', '--tail', '50', container]).then(
        (r) => r.stdout + r.stderr,
        (e: Error) => e.message,
      );
      throw new Error(`postgres container ${container} is not running:\n${logs}`);
    }
    const ready = await engine.docker(['exec', container, 'pg_isready', '-q', '-U', 'postgres']).then(
      () => true,
      () => false,
    );
    if (ready) return;
    if (Date.now() >= deadline) throw new Error(`postgres in ${container} not ready after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * Runs `sql` (one or more statements, fed on stdin) with psql as postgres inside `container`;
 * returns its unaligned, tuples-only output (`-At`). Rejects on the first SQL error.
 */
export async function psql(engine: DockerEngine, container: string, sql: string, db = 'postgres'): Promise<string> {
  const { stdout } = await engine.docker(
    ['exec', '-i', container, 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'postgres', '-d', db, '-f', '-'],
    { input: Buffer.from(sql) },
  );
  return stdout;
}
