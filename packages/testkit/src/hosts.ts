import { createHash, randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Cleanup } from './cleanup.ts';
import { deleteNetns, type NetnsCommands, netnsCommands, netnsName } from './netns.ts';
import { runCommand } from './process.ts';

/**
 * Several "hosts" on one machine for multi-cluster tests: each host is a network namespace
 * joined to the others by veth pairs that the kit creates, with an address on a private /24.
 *
 * Topology
 * - 'star' (default): a "switch" namespace holds a Linux bridge `br0`; each host has one veth
 *   pair, `dm0` in the host and `p<i>` enslaved to the bridge in the switch.
 * - 'mesh': one veth pair per pair of hosts (`dm<j>` in host i leads to host j), each end
 *   configured point-to-point (`ip addr add <own> peer <other>`), so the host's single address
 *   routes to each peer through that peer's own link.
 *
 * Addresses: every test network lies inside TEST_NETWORK (10.200.0.0/16); one /24,
 * 10.200.<n>.0/24 with n derived from the run's namespace prefix, this process and a counter,
 * is used per `createHosts` call; host i gets 10.200.<n>.<i+1>. The namespaces have no default
 * route, so nothing addressed from them can leave the machine.
 *
 * Rules (environment.md): every `ip` command runs with `ip -n <ns>`; nothing is ever configured
 * in the root namespace, and a test address is only ever contacted from inside a host namespace
 * (after `routeCheck`). From the root namespace such an address would be routed out of the
 * machine, which is forbidden: `refuseRootNamespaceConnect` throws for it.
 *
 * Cleanup: each namespace is registered on `cleanup` as soon as it exists; its processes are
 * killed and it is deleted (with its veth ends). Names start with the run's prefix, so
 * scripts/clean-test-leftovers.ts removes whatever a crashed test left.
 */
export interface TestHost extends NetnsCommands {
  /** The namespace's name (netnsName(...)). */
  readonly name: string;
  /** The host's IPv4 address on the test network. */
  readonly address: string;
  /** `/run/netns/<name>`, for `nsenter --net=`. */
  readonly netnsPath: string;
  /** The veth devices the kit created in this namespace. */
  readonly devices: readonly string[];
}

export type HostLinks = 'star' | 'mesh';

export interface CreateHostsOptions {
  readonly cleanup: Cleanup;
  readonly count: number;
  readonly links?: HostLinks;
}

/** Every test network is a /24 inside this /16. */
export const TEST_NETWORK = { base: '10.200.0.0', prefixLength: 16 } as const;

const hostsByNetns = new Map<string, TestHost>();
let networkCounter = 0;

/** The third octet of the next test network: a hash of the run's prefix, this process and a counter. */
function nextSubnet(): string {
  const h = createHash('sha256')
    .update(`${netnsName('')}:${process.pid}:${networkCounter++}`)
    .digest();
  return `10.200.${h[0]}`;
}

function toInt(address: string): number {
  return address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** True for an IPv4 address inside TEST_NETWORK. */
export function isTestAddress(address: string): boolean {
  if (!isIPv4(address)) return false;
  const mask = 2 ** 32 - 2 ** (32 - TEST_NETWORK.prefixLength);
  return (toInt(address) & mask) >>> 0 === toInt(TEST_NETWORK.base);
}

/**
 * Throws when asked to connect from the root namespace (this test process, or anything it runs
 * without a host) to a test address: from there the packet would leave the machine.
 */
export function refuseRootNamespaceConnect(address: string): void {
  const known = [...hostsByNetns.values()].some((h) => h.address === address);
  if (known || isTestAddress(address)) {
    throw new Error(
      `refusing to connect from the root network namespace to ${address}: test addresses are only reachable ` +
        'from inside a test host (use host.exec / runDmIn / startServerProcess({ host }))',
    );
  }
}

interface RouteEntry {
  readonly type?: string;
  readonly dst?: string;
  readonly dev?: string;
  readonly gateway?: string;
}

/**
 * Checks, inside `from`'s namespace, that traffic to `toAddress` goes through a veth the kit
 * created there (or stays in the namespace: its own address or loopback, via `lo`). Throws
 * otherwise, e.g. for an address that is not on the test network (the namespaces have no
 * default route, so `ip route get` fails) or a host the kit did not make.
 */
export async function routeCheck(from: TestHost, toAddress: string): Promise<void> {
  if (hostsByNetns.get(from.name) !== from) throw new Error(`route check: ${from.name} is not a live host made by createHosts`);
  if (!isIPv4(toAddress)) throw new Error(`route check from ${from.name}: ${toAddress} is not an IPv4 address`);
  let routes: RouteEntry[];
  try {
    const { stdout } = await runCommand('ip', ['-n', from.name, '-j', 'route', 'get', toAddress]);
    routes = JSON.parse(stdout) as RouteEntry[];
  } catch (e) {
    throw new Error(`route check from ${from.name} to ${toAddress} failed: ${(e as Error).message}`, { cause: e });
  }
  const r = routes[0];
  if (r?.type === 'local' && r.dev === 'lo') return;
  if (r?.dev !== undefined && from.devices.includes(r.dev) && r.gateway === undefined) return;
  throw new Error(
    `route check from ${from.name} to ${toAddress}: the route ${JSON.stringify(r)} does not use a veth made by the test kit ` +
      `(${from.devices.join(', ')})`,
  );
}

function makeHost(name: string, address: string, devices: string[]): TestHost {
  const netnsPath = `/run/netns/${name}`;
  return { name, address, netnsPath, devices, ...netnsCommands(netnsPath) };
}

async function addNamespace(cleanup: Cleanup, name: string): Promise<void> {
  await runCommand('ip', ['netns', 'add', name]);
  cleanup.add(async () => {
    hostsByNetns.delete(name);
    await deleteNetns(name);
  }, `delete network namespace ${name}`);
  await runCommand('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Creates `count` hosts (see TestHost); everything is removed by `cleanup`. */
export async function createHosts(o: CreateHostsOptions): Promise<TestHost[]> {
  const { cleanup, count, links = 'star' } = o;
  if (!Number.isInteger(count) || count < 1 || count > 250) throw new Error(`createHosts: count must be 1..250, got ${count}`);
  const tag = randomBytes(2).toString('hex');
  const subnet = nextSubnet();
  const names = Array.from({ length: count }, (_, i) => netnsName(`${tag}h${i}`));
  const addresses = names.map((_, i) => `${subnet}.${i + 1}`);
  const devices: string[][] = names.map(() => []);
  await Promise.all(names.map((n) => addNamespace(cleanup, n)));
  const ipn = (ns: string, args: readonly string[]) => runCommand('ip', ['-n', ns, ...args]);
  if (links === 'star') {
    const sw = netnsName(`${tag}sw`);
    await addNamespace(cleanup, sw);
    await ipn(sw, ['link', 'add', 'br0', 'type', 'bridge']);
    await ipn(sw, ['link', 'set', 'br0', 'up']);
    await Promise.all(
      names.map(async (ns, i) => {
        await ipn(sw, ['link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'dm0', 'netns', ns]);
        await ipn(sw, ['link', 'set', `p${i}`, 'master', 'br0', 'up']);
        await ipn(ns, ['addr', 'add', `${addresses[i]}/24`, 'dev', 'dm0']);
        await ipn(ns, ['link', 'set', 'dm0', 'up']);
        devices[i]!.push('dm0');
      }),
    );
  } else {
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) for (let j = i + 1; j < count; j++) pairs.push([i, j]);
    await Promise.all(
      pairs.map(async ([i, j]) => {
        await ipn(names[i]!, ['link', 'add', `dm${j}`, 'type', 'veth', 'peer', 'name', `dm${i}`, 'netns', names[j]!]);
        for (const [a, b] of [
          [i, j],
          [j, i],
        ] as const) {
          await ipn(names[a]!, ['addr', 'add', addresses[a]!, 'peer', `${addresses[b]}/32`, 'dev', `dm${b}`]);
          await ipn(names[a]!, ['link', 'set', `dm${b}`, 'up']);
          devices[a]!.push(`dm${b}`);
        }
      }),
    );
  }
  return names.map((name, i) => {
    const host = makeHost(name, addresses[i]!, devices[i]!);
    hostsByNetns.set(name, host);
    return host;
  });
}
