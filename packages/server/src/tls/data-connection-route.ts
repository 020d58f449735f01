import { DataConnections } from '@dotmesh/transfer';
import type { Logger } from '../log.ts';
import type { TlsConnectionTaker } from './shared-tls-port.ts';

/** A data connection's TLS handshake (done by the pumps) must end within this. */
export const DATA_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A connection to the TLS port must have sent its first TLS record within this. */
export const FIRST_RECORD_TIMEOUT_MS = 10_000;

/**
 * The TLS port's routing (shared-tls-port.ts): a ClientHello naming a waiting commit stream
 * goes to it; one naming a data connection that is not waiting (made up, used, expired) is
 * closed at once — it is never Node's; everything else is the HTTPS API's.
 */
export function dataConnectionRoute(
  connections: DataConnections | undefined,
  logger: Logger,
): (alpn: readonly string[]) => TlsConnectionTaker | undefined {
  return (alpn) => {
    if (!DataConnections.claims(alpn)) return undefined;
    const taker = connections?.take(alpn);
    if (taker) return taker;
    return (socket) => {
      logger.info({ remote: socket.remoteAddress }, 'refused a data connection for a commit stream that is not expected');
      socket.destroy();
    };
  };
}
