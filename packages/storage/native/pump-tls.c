/*
 * dotmesh-pump's TLS (pump-tls.h): OpenSSL 3 on the connection's socket, TLS 1.3 only (both ends
 * are dotmesh-pumps), with the trust rules of Node's side (@dotmesh/rpc tls.ts): a client trusts
 * the server by the pin of its leaf certificate (exactly that certificate; no name, no chain),
 * by the pin of its cluster CA (the leaf issued and signed by a certificate the server sends
 * whose SubjectPublicKeyInfo has that SHA-256), or by a CA file with the usual name check.
 * Every check runs right after the handshake, before the stream key or any byte of the stream,
 * so nothing of the stream reaches an untrusted peer or comes from one.
 */
#define _GNU_SOURCE
#include "pump-tls.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static SSL *ssl = NULL;
static int sock = -1;
static int io_errno = 0; /* the errno of the last failed read or write of the socket */
static int idle = 30000, handshake_ms = 10000;

/* Bytes already read from the socket by someone else (the peeked ClientHello). */
static unsigned char prefix[16 * 1024 + 512];
static size_t prefix_len = 0, prefix_at = 0;

int tls_on(int fd) { return ssl != NULL && fd == sock; }

/* The oldest OpenSSL error queued, for messages; clears the queue. */
static const char *ssl_reason(void) {
  static char text[256];
  unsigned long e = ERR_get_error();
  if (e == 0) return io_errno ? why(io_errno) : "the connection ended";
  ERR_error_string_n(e, text, sizeof text);
  ERR_clear_error();
  return text;
}

/* ---- the socket as an OpenSSL BIO: the prefix first, then the fd ---------------------------- */

static int bio_read(BIO *b, char *buf, size_t n, size_t *got) {
  BIO_clear_retry_flags(b);
  if (prefix_at < prefix_len) {
    size_t k = prefix_len - prefix_at < n ? prefix_len - prefix_at : n;
    memcpy(buf, prefix + prefix_at, k);
    prefix_at += k, *got = k;
    return 1;
  }
  for (;;) {
    ssize_t r = read(sock, buf, n);
    if (r > 0) return *got = (size_t)r, 1;
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) BIO_set_retry_read(b);
    else io_errno = errno;
    return 0;
  }
}

static int bio_write(BIO *b, const char *buf, size_t n, size_t *put) {
  BIO_clear_retry_flags(b);
  for (;;) {
    ssize_t w = write(sock, buf, n);
    if (w >= 0) return *put = (size_t)w, 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) BIO_set_retry_write(b);
    else io_errno = errno;
    return 0;
  }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO *socket_bio(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dotmesh-pump socket");
  if (!m || !BIO_meth_set_read_ex(m, bio_read) || !BIO_meth_set_write_ex(m, bio_write) || !BIO_meth_set_ctrl(m, bio_ctrl))
    die(1, "BIO_meth_new failed");
  BIO *b = BIO_new(m);
  if (!b) die(1, "BIO_new failed");
  BIO_set_init(b, 1);
  return b;
}

/* ---- waiting --------------------------------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* After an SSL call returned r <= 0: waits for the socket as OpenSSL asks, at most until
 * deadline (ms; the idle time when 0), and returns; dies on anything but a retry. */
static void await_ssl(int r, int64_t deadline, const char *what, int fail_code) {
  int e = SSL_get_error(ssl, r);
  short events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
  if (events == 0) die(fail_code, "%s: %s", what, ssl_reason());
  struct pollfd p = {.fd = sock, .events = events};
  for (;;) {
    int64_t left = deadline ? deadline - now_ms() : idle;
    if (left <= 0) die(EXIT_IO, "%s: not done after %d ms", what, handshake_ms); /* a trickle never idles */
    int n = poll(&p, 1, (int)left);
    if (n > 0) return;
    if (n == 0 && deadline) die(EXIT_IO, "%s: not done after %d ms", what, handshake_ms);
    if (n == 0) die(EXIT_IO, "%s: nothing moved for %d ms (connection lost?)", what, idle);
    if (errno != EINTR) die(EXIT_IO, "%s: poll: %s", what, why(errno));
  }
}

/* ---- trust ----------------------------------------------------------------------------------- */

/* "AB:cd:…" or "abcd…" (optionally "sha256:"-prefixed) into 32 bytes; dies if it is not that. */
static void parse_sha256(const char *text, unsigned char out[32]) {
  const char *p = text;
  if (!strncasecmp(p, "sha256:", 7)) p += 7;
  size_t n = 0;
  for (; *p; p++) {
    if (*p == ':') continue;
    int v = *p >= '0' && *p <= '9' ? *p - '0' : (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f' ? (*p | 0x20) - 'a' + 10 : -1;
    if (n == 64 || v < 0) die(EXIT_USAGE, "not a SHA-256 fingerprint: %s", text);
    out[n / 2] = (unsigned char)(n % 2 ? out[n / 2] | v : v << 4);
    n++;
  }
  if (n != 64) die(EXIT_USAGE, "not a SHA-256 fingerprint: %s", text);
}

static void spki_sha256(X509 *c, unsigned char out[32]) {
  unsigned char *der = NULL;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
  unsigned int olen = 0;
  if (len <= 0 || !EVP_Digest(der, (size_t)len, out, &olen, EVP_sha256(), NULL)) die(1, "cannot hash a public key");
  OPENSSL_free(der);
}

/* The client's checks of the server, once the handshake is done. */
static void check_server(const struct tls_options *o) {
  X509 *leaf = SSL_get0_peer_certificate(ssl);
  if (!leaf) die(EXIT_TLS, "the server sent no certificate");
  unsigned char want[32], got[32];
  if (o->pin_cert) {
    unsigned int n = 0;
    parse_sha256(o->pin_cert, want);
    if (!X509_digest(leaf, EVP_sha256(), got, &n) || n != 32 || memcmp(want, got, 32) != 0)
      die(EXIT_TLS, "the server's certificate is not the pinned one (SHA-256 %s)", o->pin_cert);
  } else if (o->pin_ca) {
    parse_sha256(o->pin_ca, want);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl); /* client side: the chain the server sent, leaf first */
    int trusted = 0;
    for (int i = 0; chain && i < sk_X509_num(chain) && !trusted; i++) {
      X509 *ca = sk_X509_value(chain, i);
      spki_sha256(ca, got);
      if (memcmp(want, got, 32) != 0) continue;
      EVP_PKEY *key = X509_get0_pubkey(ca);
      trusted = X509_check_issued(ca, leaf) == X509_V_OK && key && X509_verify(leaf, key) == 1;
    }
    if (!trusted) die(EXIT_TLS, "the server's certificate is not issued by the pinned cluster CA %s", o->pin_ca);
  } else {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) die(EXIT_TLS, "the server's certificate is not trusted: %s", X509_verify_cert_error_string(v));
  }
  if (o->alpn) {
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(ssl, &p, &n);
    if (n != strlen(o->alpn) || memcmp(p, o->alpn, n) != 0) die(EXIT_TLS, "the server did not agree to ALPN %s", o->alpn);
  }
}

/* Server: the client must offer exactly our protocol among its ALPN protocols. */
static int select_alpn(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen,
                       void *arg) {
  (void)s;
  const char *want = arg;
  size_t wlen = strlen(want);
  for (unsigned int i = 0; i < inlen;) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == wlen && memcmp(in + i + 1, want, n) == 0) {
      *out = in + i + 1, *outlen = (unsigned char)n;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *context(const struct tls_options *o, int server) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)) die(1, "SSL_CTX_new: %s", ssl_reason());
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(ctx, 0);
  if (o->cert) {
    if (!o->key) die(EXIT_USAGE, "--tls-cert needs --tls-key");
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
      die(EXIT_USAGE, "cannot use the certificate %s with the key %s: %s", o->cert, o->key, ssl_reason());
  } else if (server) {
    die(EXIT_USAGE, "--tls server needs --tls-cert and --tls-key");
  }
  if (server) {
    if (o->ca_file) { /* mutual TLS: a client certificate issued by these CAs, or no handshake */
      if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) die(EXIT_USAGE, "cannot read CAs from %s: %s", o->ca_file, ssl_reason());
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (o->alpn) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, (void *)o->alpn);
    return ctx;
  }
  int pinned = o->pin_cert || o->pin_ca;
  if (!pinned) { /* verified by CAs and the name; the decision is taken after the handshake, with our message */
    int ok = o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) die(EXIT_USAGE, "cannot read CAs%s%s: %s", o->ca_file ? " from " : "", o->ca_file ? o->ca_file : "", ssl_reason());
    if (!o->name) die(EXIT_USAGE, "--tls client verified by CAs needs --tls-name");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (o->alpn) {
    unsigned char protos[256];
    size_t n = strlen(o->alpn);
    if (n == 0 || n > 255) die(EXIT_USAGE, "invalid ALPN protocol");
    protos[0] = (unsigned char)n, memcpy(protos + 1, o->alpn, n);
    if (SSL_CTX_set_alpn_protos(ctx, protos, (unsigned int)n + 1) != 0) die(1, "SSL_CTX_set_alpn_protos failed");
  }
  return ctx;
}

/* ---- the connection -------------------------------------------------------------------------- */

static void tls_start(int fd, const struct tls_options *o, int idle_ms);

/* Reads fd to its end into buf (at most cap bytes), then closes it. */
static void read_small(int fd, unsigned char *buf, size_t cap, size_t *len, const char *what) {
  for (*len = 0;;) {
    if (*len == cap) die(EXIT_TLS, "%s is larger than %zu bytes", what, cap);
    ssize_t r = read(fd, buf + *len, cap - *len);
    if (r == 0) break;
    if (r < 0 && errno != EINTR) die(EXIT_IO, "%s: %s", what, why(errno));
    if (r > 0) *len += (size_t)r;
  }
  close(fd);
}

void tls_open(int fd, const struct tls_options *o, int idle_ms) {
  unsigned char key[STREAM_KEY_BYTES + 1];
  size_t key_len = 0;
  if (o->key_fd >= 0) {
    read_small(o->key_fd, key, sizeof key, &key_len, "the stream key");
    if (key_len != STREAM_KEY_BYTES) die(EXIT_USAGE, "the stream key must be %d bytes, got %zu", STREAM_KEY_BYTES, key_len);
  }
  tls_start(fd, o, idle_ms);
  if (key_len == 0) return;
  if (strcmp(o->mode, "server") != 0) {
    tls_write_full(key, key_len, "sending the stream key", EXIT_IO);
    return;
  }
  unsigned char got[STREAM_KEY_BYTES];
  for (size_t at = 0; at < sizeof got;) {
    size_t r = tls_read_some(got + at, sizeof got - at, "the stream key");
    if (r == 0) die(EXIT_TLS, "the client closed before sending the stream key");
    at += r;
  }
  if (CRYPTO_memcmp(got, key, STREAM_KEY_BYTES) != 0) die(EXIT_TLS, "wrong stream key: the connection is not the transfer's");
}

static void tls_start(int fd, const struct tls_options *o, int idle_ms) {
  int server = !strcmp(o->mode, "server");
  if (!server && strcmp(o->mode, "client") != 0) die(EXIT_USAGE, "--tls is client or server, not %s", o->mode);
  sock = fd, idle = idle_ms;
  /* Every wait is a poll with a deadline, never a blocking read or write. */
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) die(EXIT_IO, "the connection: %s", why(errno));
  if (o->prefix_fd >= 0) {
    if (!server) die(EXIT_USAGE, "--tls-prefix-fd is for --tls server");
    read_small(o->prefix_fd, prefix, sizeof prefix, &prefix_len, "the peeked ClientHello");
  }
  SSL_CTX *ctx = context(o, server);
  ssl = SSL_new(ctx);
  if (!ssl) die(1, "SSL_new: %s", ssl_reason());
  BIO *b = socket_bio();
  SSL_set_bio(ssl, b, b);
  if (!server) {
    unsigned char addr[16];
    int ip = o->name && (inet_pton(AF_INET, o->name, addr) == 1 || inet_pton(AF_INET6, o->name, addr) == 1);
    if (o->name && !ip && !SSL_set_tlsext_host_name(ssl, o->name)) die(EXIT_USAGE, "invalid --tls-name %s", o->name);
    if (o->name && !(o->pin_cert || o->pin_ca)) {
      X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
      if (!X509_VERIFY_PARAM_set1_ip_asc(vp, o->name) && !X509_VERIFY_PARAM_set1_host(vp, o->name, 0))
        die(EXIT_USAGE, "invalid --tls-name %s", o->name);
    }
  }
  handshake_ms = o->handshake_ms > 0 ? o->handshake_ms : idle_ms;
  int64_t deadline = now_ms() + handshake_ms;
  const char *what = server ? "TLS handshake with the client" : "TLS handshake with the server";
  for (;;) {
    ERR_clear_error();
    io_errno = 0;
    int r = server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (r == 1) break;
    await_ssl(r, deadline, what, EXIT_TLS);
  }
  if (!server) check_server(o);
}

size_t tls_read_some(void *buf, size_t n, const char *what) {
  for (;;) {
    size_t got = 0;
    ERR_clear_error();
    io_errno = 0;
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1) return got;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && io_errno == 0 && ERR_peek_error() == 0) return 0; /* ended without close_notify */
    if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return 0;
    await_ssl(r, 0, what, EXIT_IO);
  }
}

void tls_write_full(const void *buf, size_t n, const char *what, int fail_code) {
  const char *p = buf;
  while (n > 0) {
    size_t put = 0;
    ERR_clear_error();
    io_errno = 0;
    int r = SSL_write_ex(ssl, p, n, &put);
    if (r == 1) {
      p += put, n -= put;
      continue;
    }
    await_ssl(r, 0, what, fail_code);
  }
}

void tls_finish(void) {
  if (ssl) SSL_shutdown(ssl);
}
