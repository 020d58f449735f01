/** The server's version, reported by `Version` and `dm version`. */
export const SERVER_VERSION = '0.1.0';
