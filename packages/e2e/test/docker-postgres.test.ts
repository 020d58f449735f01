import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDotmeshError } from '@dotmesh/core';
import { Cleanup, importPostgresImage, psql, skipUnless, waitForPostgres } from '@dotmesh/testkit';
import { type DockerCluster, startDockerCluster } from './docker-harness.ts';

/**
 * A real application on dots: PostgreSQL 15 (testkit's debootstrapped image) with its data
 * directory on a dot of our Docker volume plugin, against a real dockerd, driven by the built
 * `dm`. Reset and checkout stop the database (SIGTERM: a smart shutdown, so no psql session may
 * stay open meanwhile: every psql here is a short `docker exec`), move the data and start it
 * again; a commit taken under pgbench load is crash-consistent, so a second server started on a
 * branch of it recovers to a state where pgbench's balance invariants hold.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup', 'netns', 'docker', 'debootstrap']);

const PGDATA = '/var/lib/postgresql/data';
const STARTUP_MS = 120_000;

describe('PostgreSQL on a dot through the Docker volume plugin', { skip, timeout: 10 * 60_000 }, () => {
  const cleanup = new Cleanup();
  let d: DockerCluster;
  let image: string;
  before(async () => {
    // Sparse: room for three clusters, pgbench's WAL and the extents commits pin.
    d = await startDockerCluster(cleanup, { poolSize: '4G' });
    image = await importPostgresImage(d.engine);
  });
  after(async () => cleanup.run());

  const dm = (args: readonly string[]) => d.c.ok(args);
  const sql = (container: string, text: string) => psql(d.engine, container, text);
  const startedAt = async (container: string) => (await d.docker(['inspect', '-f', '{{.State.StartedAt}}', container])).trim();
  /** Starts postgres on `volume` (a dot, `dot@branch`) as `name` and waits until it serves. */
  const startPostgres = async (name: string, volume: string) => {
    await d.docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '-v',
      `${volume}:${PGDATA}`,
      '--volume-driver',
      d.driver,
      image,
    ]);
    await waitForPostgres(d.engine, name, STARTUP_MS);
  };
  /** A graceful stop (postgres checkpoints and exits), then removal. */
  const stopPostgres = async (name: string) => {
    await d.docker(['stop', '-t', '60', name]);
    await d.docker(['rm', name]);
  };
  /** The `items` table, one `id|name` line per row, in id order. */
  const items = (container: string) => sql(container, 'select id, name from items order by id');
  /** Commit ids of the current dot and branch, oldest first, as `dm log` prints them. */
  const commitIds = async () => [...(await dm(['log'])).matchAll(/^commit (\S+)$/gm)].map((m) => m[1] as string);

  test('reset --hard restarts the database on the committed rows', async () => {
    const dot = 'pgdot';
    const pg = 'pg1';
    await startPostgres(pg, dot);
    await sql(
      pg,
      "create table items (id int primary key, name text); insert into items values (1, 'apple'), (2, 'banana'), (3, 'cherry');",
    );
    const v1 = '1|apple\n2|banana\n3|cherry\n';
    assert.equal(await items(pg), v1);
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'rows-v1']);
    const created = await commitIds(); // the dot's initial commit, then rows-v1
    assert.equal(created.length, 2);
    const v1Id = created[1] as string;

    await sql(
      pg,
      "update items set name = 'blueberry' where id = 2; delete from items where id = 3; insert into items values (4, 'date');",
    );
    await dm(['commit', '-m', 'rows-v2']);
    await sql(pg, "insert into items values (5, 'elderberry'); update items set name = 'apricot' where id = 1;");
    assert.equal(await items(pg), '1|apricot\n2|blueberry\n4|date\n5|elderberry\n');
    assert.equal((await commitIds()).length, 3);

    const before = await startedAt(pg);
    await dm(['reset', '--hard', v1Id]);
    assert.notEqual(await startedAt(pg), before, 'Dotmesh restarted the database container');
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), v1, 'both the committed and the uncommitted changes are gone');
    assert.deepEqual(await commitIds(), created);
    const log = await dm(['log']);
    assert.match(log, /rows-v1/);
    assert.doesNotMatch(log, /rows-v2/);
    // The rolled-back database takes writes again.
    await sql(pg, "insert into items values (6, 'fig');");
    assert.equal(await items(pg), `${v1}6|fig\n`);
  });

  test('checkout moves the database between branches; both states stay intact', async () => {
    const dot = 'pgbranchy';
    const pg = 'pg2';
    await startPostgres(pg, dot);
    await sql(
      pg,
      "create table items (id int primary key, name text); insert into items values (1, 'one'), (2, 'two'), (3, 'three');",
    );
    const master = '1|one\n2|two\n3|three\n';
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'master rows']);

    let started = await startedAt(pg);
    await dm(['checkout', '-b', 'experiment']);
    assert.notEqual(await startedAt(pg), started, 'checkout -b restarted the database');
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), master, 'the branch starts from master');
    await sql(
      pg,
      "delete from items where id = 1; update items set name = 'TWO' where id = 2; insert into items values (10, 'ten');",
    );
    const experiment = '2|TWO\n3|three\n10|ten\n';
    assert.equal(await items(pg), experiment);
    await dm(['commit', '-m', 'experiment rows']);
    assert.match(await dm(['branch']), /^\* experiment$/m);

    started = await startedAt(pg);
    await dm(['checkout', 'master']);
    assert.notEqual(await startedAt(pg), started, 'checkout master restarted the database');
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), master, "master's rows, exactly");
    assert.match(await dm(['branch']), /^\* master$/m);

    // Meanwhile a second server pinned to the branch sees (and writes) the branch's data.
    const pinned = 'pg2exp';
    await startPostgres(pinned, `${dot}@experiment`);
    assert.equal(await items(pinned), experiment);
    await sql(pinned, "insert into items values (11, 'eleven');");
    assert.equal(await items(pg), master, 'the writes on the branch leave master alone');
    await stopPostgres(pinned);

    started = await startedAt(pg);
    await dm(['checkout', 'experiment']);
    assert.notEqual(await startedAt(pg), started, 'checkout experiment restarted the database');
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), `${experiment}11|eleven\n`, "experiment's rows, with the pinned server's write");
    await dm(['checkout', 'master']);
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), master);
  });

  test('checkout never starts a second server on a data directory a pinned server uses; --stop-others stops it first', async () => {
    const dot = 'shop';
    const pg = 'pgshop';
    const pinned = 'pgshopexp';
    await startPostgres(pg, dot);
    await sql(pg, "create table items (id int primary key, name text); insert into items values (1, 'master');");
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'master row']);
    await dm(['checkout', '-b', 'exp']);
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    await sql(pg, "insert into items values (2, 'exp');");
    await dm(['commit', '-m', 'exp row']);
    await dm(['checkout', 'master']);
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    await startPostgres(pinned, `${dot}@exp`);
    const exp = '1|master\n2|exp\n';
    assert.equal(await items(pinned), exp);
    const before = await Promise.all([pg, pinned].map(startedAt));

    // What the issue saw: `dm checkout exp` would start pg on the data directory pgshopexp runs on.
    const r = await d.c.dm(['checkout', 'exp']);
    assert.equal(r.code, 5, `dm checkout exp: ${r.stdout}${r.stderr}`);
    assert.match(
      r.stderr,
      /Cannot switch admin\/shop to branch exp: \/pgshop would use the same data as \/pgshopexp, already running on exp/,
    );
    assert.match(r.stderr, /dm checkout --stop-others exp/);
    // The original dm's request (no StopOthers) gets the same refusal.
    const client = await d.c.client();
    await assert.rejects(
      client.call('SwitchContainers', { Namespace: 'admin', Name: dot, NewBranchName: 'exp' }),
      (e: unknown) => {
        assert.ok(isDotmeshError(e));
        assert.equal(e.code, 'IN_USE');
        assert.match(e.message, /\/pgshop would use the same data as \/pgshopexp/);
        return true;
      },
    );
    assert.deepEqual(await Promise.all([pg, pinned].map(startedAt)), before, 'neither server was touched');
    assert.equal(await items(pg), '1|master\n', 'pg still serves master');
    assert.equal(await items(pinned), exp);
    assert.match(await dm(['branch']), /^\* master$/m);

    await dm(['checkout', '--stop-others', 'exp']);
    assert.equal(
      (await d.docker(['inspect', '-f', '{{.State.Running}}', pinned])).trim(),
      'false',
      'the pinned server was stopped',
    );
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), exp, "pg serves exp's rows");
    // pg found the data directory cleanly shut down by pgshopexp, not interrupted under a live server.
    const { stdout, stderr } = await d.engine.docker(['logs', pg]);
    const startups = [...(stdout + stderr).matchAll(/database system was (shut down|interrupted)/g)].map((m) => m[1]);
    assert.equal(startups.at(-1), 'shut down', `pg's last start:\n${stdout}${stderr}`);
    assert.match(await dm(['branch']), /^\* exp$/m);
    await dm(['checkout', 'master']);
    await waitForPostgres(d.engine, pg, STARTUP_MS);
    assert.equal(await items(pg), '1|master\n');
    await stopPostgres(pg);
    await d.docker(['rm', pinned]);
  });

  test('a commit under pgbench load is crash-consistent: a branch of it recovers with balanced books', async (t) => {
    const dot = 'bench';
    const pg = 'pgload';
    await startPostgres(pg, dot);
    await d.docker(['exec', pg, 'pgbench', '-q', '-U', 'postgres', '-i', '-s', '2', 'postgres']);

    // The load runs in the background: this test's commit and branch happen while it does.
    let loadDone = false;
    const load = d.engine
      .docker(['exec', pg, 'pgbench', '-U', 'postgres', '-c', '4', '-j', '2', '-T', '20', 'postgres'], { timeoutMs: 120_000 })
      .finally(() => {
        loadDone = true;
      });
    load.catch(() => {}); // awaited below; a failure before then must not be unhandled
    const historyCount = async (container: string) =>
      Number((await sql(container, 'select count(*) from pgbench_history')).trim());
    const deadline = Date.now() + 30_000;
    const loadOutput = () => load.then((r) => r.stdout + r.stderr, String);
    while ((await historyCount(pg)) < 100) {
      if (loadDone) assert.fail(`pgbench ended early: ${await loadOutput()}`);
      assert.ok(Date.now() < deadline, 'pgbench made no progress in 30 s');
      await sleep(500);
    }
    await sleep(1000);

    await dm(['switch', dot]);
    // Transactions committed before `dm commit` starts must be in the commit (a PostgreSQL commit
    // is flushed to the WAL before others see it); those after it returns cannot be.
    const committedBefore = await historyCount(pg);
    const t0 = Date.now();
    await dm(['commit', '-m', 'under-load']);
    t.diagnostic(`dm commit under load took ${Date.now() - t0} ms`);
    const committedAfter = await historyCount(pg);
    if (loadDone) assert.fail(`pgbench ended before the commit: ${await loadOutput()}`);
    const ids = await commitIds(); // the dot's initial commit, then under-load
    assert.equal(ids.length, 2);
    const commitId = ids[1] as string;
    const client = await d.c.client();
    await client.call('Branch', {
      Namespace: 'admin',
      Name: dot,
      SourceBranch: 'master',
      NewBranchName: 'fromload',
      SourceCommitId: commitId,
    });
    assert.match(await dm(['branch']), /^\s+fromload$/m);
    assert.match(await dm(['log']), /under-load/);

    const branchPg = 'pgbranch';
    await startPostgres(branchPg, `${dot}@fromload`);
    const { stdout, stderr } = await d.engine.docker(['logs', branchPg]);
    assert.match(
      stdout + stderr,
      /database system was not properly shut down; automatic recovery in progress/,
      `the branch's server did crash recovery:\n${stdout}${stderr}`,
    );

    const books = async (container: string) => {
      const out = await sql(
        container,
        `select (select sum(abalance) from pgbench_accounts), (select sum(tbalance) from pgbench_tellers),
                (select sum(bbalance) from pgbench_branches), (select coalesce(sum(delta), 0) from pgbench_history),
                (select count(*) from pgbench_history), (select count(*) from pgbench_accounts)`,
      );
      const [accounts, tellers, branches, deltas, txns, rows] = out.trim().split('|').map(Number) as number[];
      assert.equal(rows, 200_000, `${container}: scale 2 has 200000 accounts`);
      assert.equal(accounts, deltas, `${container}: sum(abalance) = sum(delta)`);
      assert.equal(tellers, deltas, `${container}: sum(tbalance) = sum(delta)`);
      assert.equal(branches, deltas, `${container}: sum(bbalance) = sum(delta)`);
      return txns as number;
    };
    const atCommit = await books(branchPg);
    t.diagnostic(`pgbench_history rows: ${committedBefore} before dm commit, ${atCommit} in it, ${committedAfter} after`);
    assert.ok(committedBefore >= 100, 'the commit captured work in progress');
    assert.ok(
      committedBefore <= atCommit && atCommit <= committedAfter,
      `the commit holds the transactions of its moment (${committedBefore} <= ${atCommit} <= ${committedAfter})`,
    );

    const { stdout: report } = await load;
    t.diagnostic(report.split('\n').find((l) => l.startsWith('tps')) ?? report);
    assert.match(report, /number of failed transactions: 0\b/);
    const atEnd = await books(pg);
    assert.ok(atEnd > atCommit, `master went on after the commit (${atEnd} > ${atCommit} transactions)`);
    assert.equal(await books(branchPg), atCommit, 'the branch did not see the later transactions');
    await stopPostgres(branchPg);
  });
});
