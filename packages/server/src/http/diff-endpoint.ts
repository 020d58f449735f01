import type { IncomingMessage, ServerResponse } from 'node:http';
import { DotmeshError, ERROR_CODES, isDotmeshError } from '@dotmesh/core';
import { Authenticator } from '../auth/authenticator.ts';
import type { DotContext } from '../dots/context.ts';
import { defaultSubdotView, diffLiveVsCommit, diffLiveVsHead } from '../dots/diff.ts';
import { resolveBranch } from '../dots/resolve.ts';
import type { Logger } from '../log.ts';

export interface DiffEndpointDeps {
  readonly auth: Authenticator;
  readonly ctx: DotContext;
  readonly logger: Logger;
}

/**
 * GET /diff/<namespace>:<name>[/<commitId>] (the original's route, Basic auth as /rpc): JSON
 * `[{change, filename}]` of the master branch's working copy against its latest commit or the
 * given one, default subdot only. 401 `Unauthorized.` without valid credentials, 412 when the
 * dot is unknown (or not visible to the caller), 400 for a malformed route, 404 for an unknown
 * commit; errors are plain text.
 */
export function createDiffEndpoint(deps: DiffEndpointDeps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET') return plain(res, 405, 'GET required');
    const basic = Authenticator.parseBasic(req.headers.authorization);
    const caller = basic ? await deps.auth.authenticate(basic.user, basic.secret, req.socket.remoteAddress ?? '?') : null;
    if (!caller) return plain(res, 401, 'Unauthorized.');
    try {
      const { namespace, name, commit } = parseRoute((req.url ?? '').split('?')[0] ?? '');
      const { fsId, dot } = resolveBranch(deps.ctx, caller, namespace, name, '');
      const changes =
        commit === undefined ? await diffLiveVsHead(deps.ctx, fsId) : await diffLiveVsCommit(deps.ctx, dot, fsId, commit);
      const body = JSON.stringify(defaultSubdotView(changes));
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end(body);
    } catch (e) {
      if (!isDotmeshError(e)) {
        deps.logger.error({ err: e, url: req.url?.slice(0, 200) }, 'GET /diff failed');
        return plain(res, 500, 'internal error (see the server log)');
      }
      const status = e.code === 'DOT_NOT_FOUND' ? 412 : ERROR_CODES[e.code].httpStatus;
      plain(res, status, e.hint ? `${e.message} (${e.hint})` : e.message);
    }
  };
}

function parseRoute(path: string): { namespace: string; name: string; commit: string | undefined } {
  const m = /^\/diff\/([^/]+)(?:\/([^/]+))?\/?$/.exec(path);
  const bad = () =>
    new DotmeshError('INVALID_ARGUMENT', 'expected /diff/<namespace>:<name>[/<commit id>]', {
      hint: 'for example /diff/admin:mydot',
    });
  if (!m) throw bad();
  let dot: string;
  let commit: string | undefined;
  try {
    dot = decodeURIComponent(m[1]!);
    commit = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
  } catch {
    throw bad();
  }
  const colon = dot.indexOf(':');
  if (colon < 0) throw bad();
  return { namespace: dot.slice(0, colon), name: dot.slice(colon + 1), commit };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res
    .writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' })
    .end(`${text.slice(0, 2000)}\n`);
}
