export {
  DATA_TRANSPORT_HEADER,
  type DataConnection,
  DataConnections,
  dataAlpn,
  type ExpectedConnection,
  TLS_PUMP_TRANSPORT,
} from './data-connections.ts';
export { DEFAULT_TRANSFER_TIMING, TransferEngine, type TransferTiming } from './engine.ts';
export type { LocalSideOptions, TransferCaller, TransferFailpoints, TransferHost, TransferLogger } from './host.ts';
export {
  activeContainersError,
  type IncomingCommit,
  type IncomingVolume,
  parseIncomingCommit,
  parseIncomingVolume,
  parseOrigin,
} from './incoming.ts';
export { connectPeer, type PeerRequest } from './peer-connect.ts';
export { createPeerRoutes, type PeerRoutesDeps, type ProxyTarget, type TransferProxy } from './peer-routes.ts';
export { COMMIT_HEADER, type PeerAddress, PeerSide, PROTOCOL_PATH } from './peer-side.ts';
export { createPeerStreams, type DataConnectionsDeps, type UpgradeHandler } from './peer-streams.ts';
export { INTERRUPTED_MESSAGE, interruptedError, TRANSFERS_PREFIX, TransferRecords } from './records.ts';
export {
  type CommitStream,
  type Hello,
  PROTOCOL_NAME,
  PROTOCOL_VERSIONS,
  STREAM_UPGRADE_CAPABILITY,
  type StateOptions,
  type TransferSide,
} from './side.ts';
export {
  AnswerReader,
  rawJsonResponse,
  STREAM_GO,
  STREAM_KEEPALIVE,
  STREAM_UPGRADE,
  switchingProtocols,
} from './stream-protocol.ts';
export { type HistoryEntry, holds, volumeOf, type WireCommit, type WireDot, type WireVolume, wireHistory } from './wire-dot.ts';
