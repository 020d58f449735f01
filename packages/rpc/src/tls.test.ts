import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { fingerprintOfDer, normalizeFingerprint, type PeerCertificateInfo, sameFingerprint, trustError } from './tls.ts';

const der = Buffer.from('not really a certificate, but bytes are bytes');
const hex = createHash('sha256').update(der).digest('hex');
const fp = fingerprintOfDer(der);

describe('certificate fingerprints', () => {
  test('are the SHA-256 of the DER as upper-case colon-separated pairs', () => {
    assert.equal(fp, hex.toUpperCase().match(/../g)?.join(':'));
    assert.match(fp, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  test('normalize from bare hex, lower case, SHA256: prefixes and spaces', () => {
    assert.equal(normalizeFingerprint(hex), fp);
    assert.equal(normalizeFingerprint(`SHA256:${fp.toLowerCase()}`), fp);
    assert.equal(normalizeFingerprint(` sha-256 ${hex.toUpperCase()} `), fp);
  });

  test('reject anything that is not 32 bytes of hex', () => {
    for (const bad of ['', 'AB:CD', hex.slice(2), `${hex}00`, hex.replace(/^./, 'g')]) {
      assert.throws(
        () => normalizeFingerprint(bad),
        (e) => isDotmeshError(e) && e.code === 'INVALID_ARGUMENT',
        bad,
      );
      assert.equal(sameFingerprint(bad, fp), false);
    }
    assert.equal(sameFingerprint(hex, fp), true);
  });
});

describe('the trust decision', () => {
  const untrusted: PeerCertificateInfo = {
    fingerprint: fp,
    trustedByCa: false,
    caError: 'self-signed certificate in certificate chain',
  };
  const caTrusted: PeerCertificateInfo = { fingerprint: fp, trustedByCa: true, caError: null };
  const other = normalizeFingerprint('11'.repeat(32));

  test('a matching pin is enough, even when no CA vouches for the certificate', () => {
    assert.equal(trustError('h', 1, untrusted, { pin: hex }), null);
  });

  test('a pin that does not match refuses, naming both fingerprints and the pin file', () => {
    for (const info of [untrusted, caTrusted]) {
      const err = trustError('10.0.0.1', 32606, info, { pin: other, pinSource: '/root/.dotmesh/known_servers' });
      assert.ok(err);
      assert.equal(err.code, 'PERMISSION_DENIED');
      assert.ok(err.message.includes(fp) && err.message.includes(other), err.message);
      assert.ok(err.message.includes('/root/.dotmesh/known_servers') && err.message.includes('10.0.0.1:32606'));
    }
  });

  test('without a pin only a CA-verified certificate passes; the refusal shows the fingerprint', () => {
    assert.equal(trustError('h', 1, caTrusted, {}), null);
    const err = trustError('h', 1, untrusted, {});
    assert.ok(err);
    assert.equal(err.code, 'PERMISSION_DENIED');
    assert.ok(err.message.includes(fp) && err.message.includes('self-signed'), err.message);
    assert.match(err.hint ?? '', /--trust-fingerprint/);
  });
});

describe('the cluster CA pin', () => {
  const pin = `sha256:${'a'.repeat(64)}`;
  const other = `sha256:${'b'.repeat(64)}`;
  const info = (issuerPin: string | null): PeerCertificateInfo => ({
    fingerprint: fp,
    trustedByCa: false,
    caError: 'self-signed certificate in certificate chain',
    issuerPin,
  });

  test('a leaf issued by the pinned CA is trusted, whatever its own fingerprint and the CAs say', () => {
    assert.equal(trustError('10.0.0.2', 32606, info(pin), { caPin: pin }), null);
  });

  test('another issuer, or none sent, is refused naming both pins', () => {
    for (const [presented, why] of [
      [other, `its issuer is ${other}`],
      [null, 'the server sent no CA that issued it'],
    ] as const) {
      const e = trustError('10.0.0.2', 32606, info(presented), { caPin: pin, pinSource: '/k' });
      assert.ok(e && e.code === 'PERMISSION_DENIED');
      assert.ok(e.message.includes(`not issued by the pinned cluster CA ${pin} (in /k)`), e.message);
      assert.ok(e.message.includes(why), e.message);
    }
  });
});
