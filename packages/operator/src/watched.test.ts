import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import type { Informer, KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import type { Logger } from './logger.ts';
import { specChanged, WATCH_RETRY_MS, watched } from './watched.ts';

/** An informer whose events the test fires itself; counts its starts. */
function fakeInformer() {
  const handlers = new Map<string, ((x: unknown) => void)[]>();
  let starts = 0;
  const informer = {
    on: (verb: string, cb: (x: unknown) => void) => handlers.set(verb, [...(handlers.get(verb) ?? []), cb]),
    off: () => {},
    start: async () => {
      starts++;
    },
    stop: async () => {},
  } as unknown as Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  const fire = (verb: string, x: unknown) => {
    for (const cb of handlers.get(verb) ?? []) cb(x);
  };
  return { informer, fire, starts: () => starts };
}

function recordingLog() {
  const warnings: string[] = [];
  const log = {
    info: () => {},
    warn: (m: string, f?: Record<string, unknown>) => warnings.push(`${m} ${String(f?.error)}`),
    error: () => {},
  };
  return { log: log as unknown as Logger, warnings };
}

const obj = (uid: string, generation: number) => ({ metadata: { uid, generation } });

test('specChanged: the first sighting and each new generation pass; status writes (same generation) do not', () => {
  const f = specChanged();
  assert.equal(f(obj('a', 1)), true);
  assert.equal(f(obj('a', 1)), false);
  assert.equal(f(obj('b', 1)), true, 'another object');
  assert.equal(f(obj('a', 2)), true);
  assert.equal(f(obj('a', 2)), false);
});

test('watched: the chosen events call back; updates through the filter', () => {
  const { informer, fire } = fakeInformer();
  const { log } = recordingLog();
  let calls = 0;
  watched(
    log,
    'things',
    informer,
    () => calls++,
    () => false,
    { delete: false, update: specChanged() },
  );
  fire('add', obj('a', 1));
  assert.equal(calls, 1);
  fire('delete', obj('a', 1));
  assert.equal(calls, 1, 'deletes are not watched');
  fire('update', obj('a', 1));
  fire('update', obj('a', 1));
  assert.equal(calls, 2, 'the first update of a (unseen by the filter) passes, its repeat does not');
  fire('update', obj('a', 2));
  assert.equal(calls, 3);
});

test('watched: a failed watch restarts after WATCH_RETRY_MS, the same error logged once a minute, none once stopped', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  try {
    const { informer, fire, starts } = fakeInformer();
    const { log, warnings } = recordingLog();
    let stopped = false;
    watched(
      log,
      'things',
      informer,
      () => {},
      () => stopped,
    );
    fire('error', new Error('the server could not find the requested resource'));
    assert.equal(starts(), 0);
    mock.timers.tick(WATCH_RETRY_MS);
    assert.equal(starts(), 1, 'restarted');
    fire('error', new Error('the server could not find the requested resource'));
    mock.timers.tick(WATCH_RETRY_MS);
    assert.equal(warnings.length, 1, 'the same error again is not logged again at once');
    fire('error', new Error('connection refused'));
    assert.equal(warnings.length, 2, 'another error is');
    mock.timers.tick(60_000);
    fire('error', new Error('connection refused'));
    assert.equal(warnings.length, 3, 'the same one a minute later is');
    stopped = true;
    const before = starts();
    fire('error', new Error('late'));
    mock.timers.tick(WATCH_RETRY_MS * 2);
    assert.equal(starts(), before, 'no restart once stopped');
    assert.match(warnings[0] ?? '', /watch failed; restarting it the server could not find/);
  } finally {
    mock.timers.reset();
  }
});
