/*
 * TLS for dotmesh-pump's connection (pump-tls.c), with OpenSSL 3: the pump speaks TLS itself on
 * the socket it was given, so that over HTTPS no byte of a commit passes through Node either.
 */
#ifndef DOTMESH_PUMP_TLS_H
#define DOTMESH_PUMP_TLS_H
#include <stddef.h>

/* The pump's exit codes (dotmesh-pump.c); EXIT_TLS: the handshake failed or the peer is not
 * trusted, before any byte of the stream moved. */
enum { EXIT_CORRUPT = 10, EXIT_IO = 11, EXIT_REFUSED = 12, EXIT_COMMAND = 13, EXIT_TLS = 14, EXIT_USAGE = 2 };

struct tls_options {
  const char *mode;     /* "client" or "server"; NULL: no TLS */
  const char *cert;     /* PEM certificate chain: the server's, or the client's for mutual TLS */
  const char *key;      /* PEM private key of cert */
  const char *ca_file;  /* client: CAs to verify the server by (with its name); server: CAs a client certificate must chain to (mutual TLS) */
  const char *pin_cert; /* client: SHA-256 of the server's leaf certificate (DER), hex, colons allowed */
  const char *pin_ca;   /* client: sha256:<hex> of the SubjectPublicKeyInfo of the CA that issued and signed the server's leaf */
  const char *name;     /* client: the server's host name or IP (SNI, and checked with ca_file) */
  const char *alpn;     /* the one ALPN protocol both sides must agree on (required when given) */
  int prefix_fd;        /* server: bytes already read from the socket (a peeked ClientHello), read to its end first; -1: none */
  int handshake_ms;     /* the whole handshake must finish within this time */
  int key_fd;           /* the stream key (STREAM_KEY_BYTES, read to its end): the client sends it first, the server requires it; -1: none */
};

/* The stream key ties a data connection to the transfer its control call set up. */
#define STREAM_KEY_BYTES 32

/* The handshake on socket `fd` (made non-blocking), every check of the peer, then the stream key:
 * on return the peer is trusted and the stream may flow. Dies with EXIT_TLS, or EXIT_IO when the
 * handshake takes longer than o->handshake_ms. */
void tls_open(int fd, const struct tls_options *o, int idle_ms);
/* Is `fd` the connection TLS runs on? */
int tls_on(int fd);
/* Reads up to n plaintext bytes (at least 1); 0 once the peer closed (close_notify or end of the connection). */
size_t tls_read_some(void *buf, size_t n, const char *what);
/* Writes all n bytes (as TLS records) or dies with fail_code. */
void tls_write_full(const void *buf, size_t n, const char *what, int fail_code);
/* Sends close_notify (best effort). */
void tls_finish(void);

/* From dotmesh-pump.c. */
_Noreturn void die(int code, const char *fmt, ...);
const char *why(int e);
#endif
