import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { type Cleanup, type DockerEngine, startDockerd } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * A real dockerd (testkit startDockerd: its own network namespace) with a busybox image, and a
 * volume driver name of its own: the plugin socket a Dotmesh server is to serve has a name of
 * its own in /run/docker/plugins (where dockerd looks for legacy plugins whatever its exec root),
 * so the driver is `dmt<random>`, never a real install's `dm`.
 */
export interface TestDocker {
  readonly engine: DockerEngine;
  /** The volume driver name (`--volume-driver`). */
  readonly driver: string;
  /** Where the server serves the plugin (its `--docker-plugin-socket`). */
  readonly pluginSocket: string;
  /** The busybox image. */
  readonly image: string;
  /** `docker run -v <volume>:/foo --volume-driver <driver> [flags] image sh -c <script>`; stdout. */
  run(volume: string, script: string, flags?: readonly string[]): Promise<string>;
  /**
   * Like run, but as `-d --name <name>` with a long sleep after the script (which `docker stop`
   * ends at once, where a bare `sleep` as PID 1 would wait out the stop timeout); returns the id.
   */
  start(name: string, volume: string, script?: string, flags?: readonly string[]): Promise<string>;
  docker(args: readonly string[]): Promise<string>;
  /**
   * Registers the removal of every container on `cleanup`; call it once the server is started,
   * so that the containers go before it (cleanup runs newest first).
   */
  removeContainersAtCleanup(): void;
}

export async function startTestDocker(cleanup: Cleanup): Promise<TestDocker> {
  const engine = await startDockerd({ cleanup });
  const image = await engine.importBusybox();
  const driver = `dmt${randomBytes(4).toString('hex')}`;
  const pluginSocket = `/run/docker/plugins/${driver}.sock`;
  cleanup.add(() => rm(pluginSocket, { force: true }), `remove ${pluginSocket}`);
  const docker = async (args: readonly string[]) => (await engine.docker(args)).stdout;
  const volumeArgs = (volume: string, flags: readonly string[]) => [
    'run',
    '--network',
    'none',
    '-v',
    `${volume}:/foo`,
    '--volume-driver',
    driver,
    ...flags,
    image,
  ];
  return {
    engine,
    driver,
    pluginSocket,
    image,
    docker,
    run: (volume, script, flags = []) => docker([...volumeArgs(volume, ['--rm', ...flags]), 'sh', '-c', script]),
    start: async (name, volume, script = 'true', flags = []) =>
      (
        await docker([
          ...volumeArgs(volume, ['-d', '--name', name, ...flags]),
          'sh',
          '-c',
          `trap 'exit 0' TERM; ${script}; sleep 100000 & wait`,
        ])
      ).trim(),
    removeContainersAtCleanup: () =>
      cleanup.add(async () => {
        const { stdout } = await engine.docker(['ps', '-aq']).catch(() => ({ stdout: '' }));
        const ids = stdout.split('\n').filter((l) => l !== '');
        if (ids.length > 0) await engine.docker(['rm', '-f', ...ids]).catch(() => undefined);
      }, 'remove containers'),
  };
}

/** A single-node cluster (`dm cluster init` of the built `dm`) whose volume plugin a TestDocker's dockerd uses. */
export interface DockerCluster extends TestDocker {
  readonly c: TestCluster;
}

export async function startDockerCluster(cleanup: Cleanup, o: { poolSize?: string } = {}): Promise<DockerCluster> {
  const d = await startTestDocker(cleanup);
  const c = await initCluster(cleanup, {
    ...(o.poolSize ? { poolSize: o.poolSize } : {}),
    extraInitArgs: ['--docker-plugin-socket', d.pluginSocket, '--docker-socket', d.engine.socket],
  });
  d.removeContainersAtCleanup();
  return { ...d, c };
}
