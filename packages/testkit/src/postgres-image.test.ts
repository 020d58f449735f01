import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { skipUnless } from './capabilities.ts';
import { Cleanup } from './cleanup.ts';
import { startDockerd } from './docker.ts';
import { ensurePostgresRootfsTarball, importPostgresImage, psql, waitForPostgres } from './postgres-image.ts';
import { makeTempDir } from './tmp.ts';

/**
 * The kit's PostgreSQL image (the database workload of the Docker volume tests): built from a
 * debootstrapped Debian rootfs, it initialises a root-owned bind-mounted PGDATA, serves over
 * TCP, runs pgbench consistently, and keeps its data across a clean stop and a SIGKILL.
 */
describe('postgres image', { skip: skipUnless(['root', 'netns', 'docker', 'debootstrap']), timeout: 15 * 60_000 }, () => {
  test('runs postgres on a bind-mounted PGDATA; data survives stop and kill', async (t) => {
    const cleanup = new Cleanup();
    try {
      const started = Date.now();
      const tarball = await ensurePostgresRootfsTarball({ log: (s) => t.diagnostic(s) });
      t.diagnostic(`rootfs tarball ready in ${Date.now() - started} ms: ${tarball}`);
      assert.ok(existsSync(tarball));

      const pgdata = await makeTempDir('pgdata', cleanup); // root-owned, like a fresh volume
      const engine = await startDockerd({ cleanup });
      const imported = Date.now();
      const image = await importPostgresImage(engine);
      const { stdout: size } = await engine.docker(['image', 'inspect', '--format', '{{.Size}}', image]);
      t.diagnostic(`docker import took ${Date.now() - imported} ms; image size ${Math.round(Number(size) / 2 ** 20)} MiB`);

      const c = 'dmtest-pg';
      await engine.docker(['run', '-d', '--name', c, '-v', `${pgdata}:/var/lib/postgresql/data`, image]);
      await waitForPostgres(engine, c, 120_000);
      assert.equal((await readFile(join(pgdata, 'PG_VERSION'), 'utf8')).trim(), '15', 'the cluster is in the bind mount');
      assert.equal((await stat(pgdata)).mode & 0o777, 0o700);
      assert.equal((await psql(engine, c, 'select current_user')).trim(), 'postgres');

      await psql(
        engine,
        c,
        'create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 1000) g;',
      );
      await engine.docker(['exec', c, 'pgbench', '-q', '-U', 'postgres', '-i', '-s', '1', 'postgres']);
      const bench = await engine.docker(['exec', c, 'pgbench', '-U', 'postgres', '-T', '3', '-c', '2', 'postgres']);
      t.diagnostic(bench.stdout.split('\n').find((l) => l.startsWith('tps')) ?? bench.stdout);
      const consistent = async (): Promise<number> => {
        const out = await psql(
          engine,
          c,
          'select (select sum(abalance) from pgbench_accounts), (select coalesce(sum(delta), 0) from pgbench_history), (select count(*) from pgbench_history);',
        );
        const [accounts, history, txns] = out.trim().split('|');
        assert.equal(accounts, history, 'sum(abalance) = sum(delta)');
        return Number(txns);
      };
      const txns = await consistent();
      assert.ok(txns > 0, 'pgbench ran transactions');

      // Over the bridge network from another container: listen_addresses='*' and host trust.
      const { stdout: ip } = await engine.docker(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', c]);
      const remote = await engine.docker([
        'run',
        '--rm',
        '--entrypoint',
        'psql',
        image,
        '-X',
        '-At',
        '-h',
        ip.trim(),
        '-U',
        'postgres',
        '-c',
        'select count(*) from t',
      ]);
      assert.equal(remote.stdout.trim(), '1000');

      await engine.docker(['stop', c]);
      await engine.docker(['start', c]);
      await waitForPostgres(engine, c, 120_000);
      assert.equal((await psql(engine, c, 'select count(*), sum(id) from t')).trim(), '1000|500500');
      assert.equal(await consistent(), txns);

      // A committed row survives SIGKILL: postgres recovers from its WAL on the next start.
      await psql(engine, c, 'insert into t values (1001, $$after$$);');
      await engine.docker(['kill', c]);
      await engine.docker(['start', c]);
      await waitForPostgres(engine, c, 120_000);
      assert.equal((await psql(engine, c, 'select v from t where id = 1001')).trim(), 'after');
      assert.equal(await consistent(), txns);
    } finally {
      await cleanup.run();
    }
  });
});
