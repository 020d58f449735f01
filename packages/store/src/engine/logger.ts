/** What the store reports that no caller is there to receive (a watch callback threw, lease expiry failed). */
export interface StoreLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export const consoleLogger: StoreLogger = {
  warn: (message, fields) => console.warn(`store: ${message}`, fields ?? ''),
};
