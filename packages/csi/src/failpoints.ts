/**
 * Test-only stops between the steps of the driver's calls (`--failpoint NAME`, repeatable): at
 * an armed one the driver kills itself with SIGKILL, as a crash at that very point would, so
 * that tests can check that a retried call finishes or undoes what the first one left.
 */
export const DRIVER_FAILPOINTS = [
  'create-volume.after-dot',
  'create-volume.after-branch',
  'create-volume.after-record',
  'controller-publish.after-attach',
  'node-stage.after-record',
  'node-stage.after-mount',
  'node-publish.after-record',
  'node-publish.after-mount',
] as const;

export type DriverFailpoint = (typeof DRIVER_FAILPOINTS)[number];

/** Stops at `name` when it is armed. */
export type Failpoint = (name: DriverFailpoint) => void;

export const NO_FAILPOINTS: Failpoint = () => undefined;

export function killingFailpoints(armed: ReadonlySet<string>, log: (e: Record<string, unknown>) => void): Failpoint {
  for (const name of armed) {
    if (!(DRIVER_FAILPOINTS as readonly string[]).includes(name)) {
      throw new Error(`unknown failpoint ${JSON.stringify(name)} (known: ${DRIVER_FAILPOINTS.join(', ')})`);
    }
  }
  return (name) => {
    if (!armed.has(name)) return;
    log({ event: 'failpoint', failpoint: name });
    process.kill(process.pid, 'SIGKILL');
  };
}
