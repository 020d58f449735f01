import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONFIG_DEFAULTS, flexvolumeDirFor, kubeletRootDirFor, parseOperatorConfig, poolLocationFor } from './config.ts';
import { matchesSelector, parseLabelSelector } from './label-selector.ts';

describe('parseOperatorConfig', () => {
  it('gives the original defaults when there is no ConfigMap or it is empty', () => {
    for (const data of [undefined, {}]) {
      const { config, problems } = parseOperatorConfig(data);
      assert.deepEqual(problems, []);
      assert.ok(config);
      assert.equal(config.nodeSelector, '');
      assert.deepEqual(config.nodeSelectorParsed, []);
      assert.equal(config.upgradesUrl, 'https://checkpoint.dotmesh.com/');
      assert.equal(config.upgradesIntervalSeconds, 14400);
      assert.equal(config.flexvolumeDriverDir, '/usr/libexec/kubernetes/kubelet-plugins/volume/exec');
      assert.equal(config.kubeletRootDir, '/var/lib/kubelet');
      assert.equal(config.storageMode, 'local');
      assert.equal(config.local.poolSizePerNodeBytes, 10 * 2 ** 30);
      assert.equal(config.local.poolLocation, '/var/lib/dotmesh');
      assert.equal(config.pvcPerNode.pvSizePerNodeBytes, 10 * 2 ** 30);
      assert.equal(config.pvcPerNode.storageClass, 'standard');
      assert.equal(config.pvcPerNode.etcdMoveWaitSeconds, 120);
    }
  });

  it('reads every key with its units', () => {
    const { config, problems } = parseOperatorConfig({
      nodeSelector: 'dotmesh.io/enabled=true, tier in (a,b)',
      upgradesIntervalSeconds: '60',
      flexvolumeDriverDir: '/k8s/#HOSTNAME#/flexvolume',
      kubeletRootDir: '/k8s/#HOSTNAME#/kubelet',
      storageMode: 'local',
      'local.poolSizePerNode': '512M',
      'local.poolLocation': '/data/#HOSTNAME#/dotmesh',
      'pvcPerNode.pvSizePerNode': '1T',
      'pvcPerNode.storageClass': 'fast.ssd',
      'pvcPerNode.etcdMoveWaitSeconds': '15',
    });
    assert.deepEqual(problems, []);
    assert.ok(config);
    assert.equal(config.pvcPerNode.etcdMoveWaitSeconds, 15);
    assert.equal(config.local.poolSizePerNodeBytes, 512 * 2 ** 20);
    assert.equal(config.pvcPerNode.pvSizePerNodeBytes, 2 ** 40);
    assert.equal(poolLocationFor(config, 'node-1'), '/data/node-1/dotmesh');
    assert.equal(flexvolumeDirFor(config, 'node-1'), '/k8s/node-1/flexvolume');
    assert.equal(kubeletRootDirFor(config, 'node-1'), '/k8s/node-1/kubelet');
    assert.equal(config.upgradesIntervalSeconds, 60);
    assert.equal(config.nodeSelector, 'dotmesh.io/enabled=true, tier in (a,b)');
  });

  it('refuses every key with a wrong value, naming the key and the accepted values', () => {
    const bad: Record<string, string> = {
      nodeSelector: 'a b c',
      upgradesIntervalSeconds: '-5',
      flexvolumeDriverDir: 'relative/dir',
      kubeletRootDir: '/var/lib/kubelet/../../etc',
      poolNamePrefix: 'no spaces',
      logAddress: 'host:99999',
      storageMode: 'zfs',
      'local.poolSizePerNode': 'big',
      'local.poolLocation': '/var/lib/../etc',
      'pvcPerNode.pvSizePerNode': '0',
      'pvcPerNode.storageClass': 'Not_A_Name',
      'pvcPerNode.etcdMoveWaitSeconds': '2m',
    };
    for (const [key, value] of Object.entries(bad)) {
      const { config, problems } = parseOperatorConfig({ [key]: value });
      assert.equal(config, undefined, key);
      assert.equal(problems.length, 1, key);
      const [p] = problems;
      assert.equal(p?.kind, 'invalid');
      assert.equal(p?.key, key);
      assert.match(p!.message, new RegExp(`ConfigMap key ${key.replace('.', '\\.')} has the invalid value`));
      assert.match(p!.message, /accepted values: /, key);
    }
    assert.match(parseOperatorConfig({ storageMode: 'pvc' }).problems[0]!.message, /accepted values: local .* or pvcPerNode/);
    assert.match(parseOperatorConfig({ 'pvcPerNode.pvSizePerNode': '100M' }).problems[0]!.message, /at least 512M/);
    assert.match(parseOperatorConfig({ 'local.poolSizePerNode': 'x' }).problems[0]!.message, /10G, 512M or 1T/);
    for (const value of ['', '0', '4', '3601', '1.5', '-10', '1e3', '120s', '999999']) {
      const { config, problems } = parseOperatorConfig({ 'pvcPerNode.etcdMoveWaitSeconds': value });
      assert.equal(config, undefined, value);
      assert.match(problems[0]!.message, /pvcPerNode\.etcdMoveWaitSeconds .*a whole number of seconds from 5 to 3600/, value);
    }
    for (const [value, seconds] of [
      ['5', 5],
      [' 30 ', 30],
      ['3600', 3600],
    ] as const) {
      assert.equal(
        parseOperatorConfig({ 'pvcPerNode.etcdMoveWaitSeconds': value }).config?.pvcPerNode.etcdMoveWaitSeconds,
        seconds,
      );
    }
  });

  it("accepts storageMode pvcPerNode with a size as a Quantity (10Gi) or in the original's units (10G)", () => {
    for (const [text, bytes] of [
      ['10Gi', 10 * 2 ** 30],
      ['10G', 10 * 2 ** 30],
      ['1536Mi', 1536 * 2 ** 20],
    ] as const) {
      const { config, problems } = parseOperatorConfig({ storageMode: 'pvcPerNode', 'pvcPerNode.pvSizePerNode': text });
      assert.deepEqual(problems, []);
      assert.equal(config?.storageMode, 'pvcPerNode');
      assert.equal(config?.pvcPerNode.pvSizePerNodeBytes, bytes, text);
    }
  });

  it('accepts obsolete keys with a warning, and warns about unknown and unsupported ones', () => {
    const { config, problems } = parseOperatorConfig({
      'kernel.zfsVersion': '0.7.9',
      poolName: 'pool',
      upgradesUrl: 'https://elsewhere.invalid/',
      colour: 'blue',
      logAddress: 'logs.example:514',
    });
    assert.ok(config);
    assert.equal(config.upgradesUrl, 'https://elsewhere.invalid/');
    assert.deepEqual(
      problems.map((p) => [p.kind, p.key]),
      [
        ['unknown', 'colour'],
        ['obsolete', 'kernel.zfsVersion'],
        ['obsolete', 'poolName'],
        ['unsupported', 'logAddress'],
      ],
    );
  });

  it('covers every default key with a parser', () => {
    for (const key of Object.keys(CONFIG_DEFAULTS)) {
      assert.equal(parseOperatorConfig({ [key]: CONFIG_DEFAULTS[key]! }).problems.length, 0, key);
    }
  });
});

describe('label selectors', () => {
  const labels = { 'dotmesh.io/enabled': 'true', tier: 'a', zone: 'x' };
  it('matches as Kubernetes does', () => {
    const cases: [string, boolean][] = [
      ['', true],
      ['dotmesh.io/enabled=true', true],
      ['dotmesh.io/enabled==true', true],
      ['dotmesh.io/enabled!=true', false],
      ['tier in (a, b)', true],
      ['tier notin (a)', false],
      ['missing', false],
      ['!missing', true],
      ['zone,!tier', false],
      ['missing!=x', true],
      ['tier=a,zone=x', true],
    ];
    for (const [text, expected] of cases) assert.equal(matchesSelector(parseLabelSelector(text), labels), expected, text);
  });
  it('refuses malformed selectors, naming the term', () => {
    for (const text of ['a b', 'a=b=c', '=x', 'tier in a', 'k=-bad-', ',', 'x/y/z']) {
      assert.throws(() => parseLabelSelector(text), /is not a label|empty term|"/, text);
    }
  });
});
