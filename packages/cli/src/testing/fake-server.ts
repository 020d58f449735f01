/**
 * Test support: a stand-in for dotmesh-server's entry (`serve --config FILE`, `destroy-pool
 * --config FILE`, `version`) that speaks just enough JSON-RPC (Ping, ListWithContainers) with the initial
 * admin credentials, writes its pid file and exits on SIGTERM — to test `dm cluster init/reset`
 * without btrfs.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseRpcRequest, rpcErrorBody, rpcResultBody } from '@dotmesh/rpc/codec';

const [command, flag, file] = process.argv.slice(2);
if (command === 'version') {
  console.log('0.0.0-fake');
  process.exit(0);
}
if (flag !== '--config' || file === undefined) throw new Error('usage: fake-server serve|destroy-pool --config FILE');
const config = JSON.parse(readFileSync(file, 'utf8'));
if (command === 'destroy-pool') {
  rmSync(config.poolFile, { force: true });
  process.exit(0);
}
const admin = JSON.parse(readFileSync(config.initialAdminFile, 'utf8'));
const expected = `Basic ${Buffer.from(`admin:${admin.apiKey}`).toString('base64')}`;
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => {
    body += c;
  });
  req.on('end', () => {
    if (req.headers.authorization !== expected) {
      res.statusCode = 401;
      res.end('Unauthorized.\n');
      return;
    }
    const r = parseRpcRequest(body);
    const method = r.ok ? r.method : '';
    if (method === 'DotmeshRPC.Ping') res.end(rpcResultBody(r.idText, true));
    else if (method === 'DotmeshRPC.ListWithContainers') res.end(rpcResultBody(r.idText, {}));
    else res.end(rpcErrorBody(r.idText, `rpc: can't find method "${method}"`));
  });
});
server.listen(config.port, config.listenHost, () => {
  writeFileSync(config.pidFile, `${process.pid}\n`);
  console.log(`fake dotmesh-server listening on ${config.listenHost}:${config.port}`);
});
process.on('SIGTERM', () => {
  rmSync(config.pidFile, { force: true });
  process.exit(0);
});
