/*
 * dotmesh-pump: the data path of the btrfs driver's commit streams, so that the bytes of a
 * commit move between `btrfs send`/`btrfs receive` and a connection without passing through
 * Node (docs/architecture.md "Commit streams", docs/decisions.md).
 *
 *   dotmesh-pump --version
 *   dotmesh-pump send [options] -- btrfs send ...
 *     Runs the command with its stdout on a pipe and writes what it prints as a framed stream
 *     (below) to --out-fd. The end frame is written only after the command exited 0.
 *   dotmesh-pump receive --check-fd FD [options] -- btrfs receive ...
 *     Reads a framed stream from --in-fd up to its end frame (nothing after it is read),
 *     verifies each frame whole before any of its bytes goes on, and writes the payload, a
 *     btrfs send stream, into the command's stdin. The stream's metadata goes to the checker on
 *     FD (the server's SendStreamCheck), which approves every command that is not plain data
 *     inside the new subvolume before the command sees it (see "Gating").
 *
 * Options: --in-fd N / --out-fd N (default 0 / 1; a non-blocking socket is fine), --idle-ms N (a
 * read or write of a non-blocking fd that waits longer fails; default 30000), --pipe-bytes N
 * (the pipe to or from the command, F_SETPIPE_SZ; default 1 MiB), --progress-fd N (framed bytes
 * moved so far, one decimal line at most every 100 ms and at the end); receive only:
 * --sync-dir DIR and --sync-every N (syncfs(DIR) in a background thread after every N bytes
 * passed on and once more when the end frame arrived, so that the caller's final sync finds
 * little left to write).
 *
 * TLS on the connection (pump-tls.c, OpenSSL 3, TLS 1.3 only), so that over HTTPS no byte of a
 * commit passes through Node either: --tls client (send: --out-fd is a connected TCP socket) or
 * --tls server (receive: --in-fd is an accepted one), --tls-alpn P (required of the peer),
 * --stream-key-fd N (32 bytes read to the end of N: the client sends them first inside TLS, the
 * server requires them before anything else), --handshake-ms N (the whole handshake; default
 * 10000). Client trust, one of: --tls-pin SHA256 (the leaf certificate), --tls-ca-pin sha256:HEX
 * (the SubjectPublicKeyInfo of the CA that issued and signed the leaf), --tls-ca FILE or the
 * system's CAs, with --tls-name NAME checked; --tls-cert/--tls-key present a client certificate.
 * Server: --tls-cert/--tls-key (its chain and key), --tls-ca FILE (then a client certificate
 * issued by one of these CAs is required), --tls-prefix-fd N (bytes a listener already read of
 * the connection, read to the end of N and taken before the socket's). Every check comes before
 * the command starts: nothing of the stream reaches or comes from an untrusted peer.
 *
 * Framed stream (transfer protocol v1, the same as @dotmesh/storage frames.ts):
 *     frame := type:u8 length:u32be body[length]
 *     type 1 = data: body = crc32:u32be payload[length - 4]   (payload 1..4 MiB)
 *     type 2 = end:  body = totalBytes:u64be dataFrames:u32be (always the last frame)
 * CRC-32 is zlib's; ISA-L's crc32_gzip_refl computes the same function, several times faster.
 *
 * Gating (receive): the checker gets records [type:u8 length:u32le data]: 'M' metadata (the
 * send stream with the payloads of ungated commands left out; their 10-byte headers stay),
 * 'Q' (a gated unit was sent whole: answer one byte, 'y' to let it through) and 'Z' (the input
 * ended well: answer 'y' once the whole stream is approved). Gated: the 17-byte stream header,
 * the first command, every command not in the data-only list of ungated() (SUBVOL, SNAPSHOT,
 * CLONE, END, unknown ones), anything after END, and a command longer than 64 KiB (then
 * refused). Any other answer, or the checker going away, stops everything.
 *
 * The pump dies with its parent (PR_SET_PDEATHSIG), and the command with the pump.
 * Exit: 0 done; 10 corrupt framing; 11 input/output failed (ended early, idle, reset, a
 * handshake past --handshake-ms); 12 refused by the checker; 13 the command failed (its stderr
 * passes through); 14 TLS refused (failed handshake, untrusted peer, wrong ALPN or stream key);
 * 2 usage; 1 internal. The last stderr line is "dotmesh-pump: <message>"; errors of system calls name
 * the errno (e.g. "ECONNRESET (Connection reset by peer)").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include "pump-tls.h"
#include <isa-l/crc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PUMP_VERSION "1"

enum { FRAME_DATA = 1, FRAME_END = 2 };
#define FRAME_HEADER_BYTES 5
#define MAX_FRAME_BYTES (4u << 20)
#define TARGET_FRAME_BYTES (1u << 20)
#define STREAM_HEADER_BYTES 17
#define CMD_HEADER_BYTES 10
#define MAX_COMMAND_BYTES (64u * 1024)
#define CMD_END 21

static int in_fd = 0, out_fd = 1, check_fd = -1, progress_fd = -1;
static int idle_ms = 30000, pipe_bytes = 1 << 20;
static const char *sync_dir = NULL;
static uint64_t sync_every = 0;
static pid_t child = -1;

_Noreturn void die(int code, const char *fmt, ...) {
  /* The command writes to our stderr too, and callers read our line as the reason: the command
   * is stopped first, and the line goes out in one write(), which lands whole in a pipe. (Three
   * stdio calls once let a line of btrfs receive fall between "dotmesh-pump: " and the rest.) */
  if (child > 0) kill(child, SIGKILL);
  static const char prefix[] = "dotmesh-pump: ";
  char line[1024];
  size_t n = sizeof prefix - 1;
  memcpy(line, prefix, n);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  if (m > 0) n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
  line[n++] = '\n';
  for (size_t at = 0; at < n;) {
    ssize_t w = write(2, line + at, n - at);
    if (w > 0) at += (size_t)w;
    else if (!(w < 0 && errno == EINTR)) break;
  }
  exit(code);
}

/* "ECONNRESET (Connection reset by peer)" for errno e. */
const char *why(int e) {
  static char text[160];
  const char *name = strerrorname_np(e);
  snprintf(text, sizeof text, "%s (%s)", name ? name : "error", strerror(e));
  return text;
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events`, at most idle_ms; dies with EXIT_IO otherwise. */
static void await_fd(int fd, short events, const char *what) {
  struct pollfd p = {.fd = fd, .events = events};
  for (;;) {
    int r = poll(&p, 1, idle_ms);
    if (r > 0) return;
    if (r == 0) die(EXIT_IO, "%s: nothing moved for %d ms (connection lost?)", what, idle_ms);
    if (errno != EINTR) die(EXIT_IO, "%s: poll: %s", what, why(errno));
  }
}

/* Reads up to n bytes (at least 1); 0 at end of input. Blocking and non-blocking fds alike. */
static size_t read_some(int fd, void *buf, size_t n, const char *what) {
  if (tls_on(fd)) return tls_read_some(buf, n, what);
  for (;;) {
    ssize_t r = read(fd, buf, n);
    if (r >= 0) return (size_t)r;
    if (errno == EAGAIN) await_fd(fd, POLLIN, what);
    else if (errno != EINTR) die(EXIT_IO, "%s: %s", what, why(errno));
  }
}

/* Reads exactly n bytes; returns 0 when the input ended first. */
static int read_full(int fd, void *buf, size_t n, const char *what) {
  size_t at = 0;
  while (at < n) {
    size_t r = read_some(fd, (char *)buf + at, n - at, what);
    if (r == 0) return 0;
    at += r;
  }
  return 1;
}

/* Writes everything or dies with `fail_code`. */
static void write_full(int fd, const void *buf, size_t n, const char *what, int fail_code) {
  if (tls_on(fd)) {
    tls_write_full(buf, n, what, fail_code);
    return;
  }
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      await_fd(fd, POLLOUT, what);
    } else if (w < 0 && errno != EINTR) {
      die(fail_code, "%s: %s", what, why(errno));
    }
  }
}

/* Starts argv with one end of a new pipe as its stdin (to_child) or stdout; returns our end. */
static int start_command(char **argv, int to_child) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) die(1, "pipe: %s", why(errno));
  fcntl(p[0], F_SETPIPE_SZ, pipe_bytes); /* best effort: capped by /proc/sys/fs/pipe-max-size */
  pid_t parent = getpid();
  child = fork();
  if (child < 0) die(1, "fork: %s", why(errno));
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the pump */
    if (getppid() != parent) _exit(127);
    dup2(p[to_child ? 0 : 1], to_child ? 0 : 1);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
    fprintf(stderr, "dotmesh-pump: cannot run %s: %s\n", argv[0], why(errno));
    _exit(127);
  }
  close(p[to_child ? 0 : 1]);
  return p[to_child ? 1 : 0];
}

/* Waits for the command; returns 0 when it exited 0, else says how it ended and returns 1. */
static int command_status(char **argv) {
  int st;
  while (waitpid(child, &st, 0) < 0)
    if (errno != EINTR) die(1, "waitpid: %s", why(errno));
  child = -1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  if (WIFEXITED(st)) fprintf(stderr, "dotmesh-pump: %s exited with code %d\n", argv[0], WEXITSTATUS(st));
  else fprintf(stderr, "dotmesh-pump: %s was killed by signal %d\n", argv[0], WTERMSIG(st));
  return 1;
}

static void put_be32(unsigned char *b, uint32_t v) {
  b[0] = v >> 24, b[1] = v >> 16, b[2] = v >> 8, b[3] = v;
}
static uint32_t get_be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* ---- progress ------------------------------------------------------------------------------ */

static uint64_t framed_bytes = 0;
static int64_t last_progress = 0;

static void progress(int force) {
  if (progress_fd < 0) return;
  int64_t t = now_ms();
  if (!force && t - last_progress < 100) return;
  last_progress = t;
  char line[32];
  int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)framed_bytes);
  write_full(progress_fd, line, (size_t)n, "progress", EXIT_IO);
}

/* ---- send ---------------------------------------------------------------------------------- */

static struct tls_options tls = {.prefix_fd = -1, .handshake_ms = 10000, .key_fd = -1};

static int run_send(char **argv) {
  if (tls.mode) tls_open(out_fd, &tls, idle_ms);
  int from = start_command(argv, 0);
  unsigned char *buf = malloc(TARGET_FRAME_BYTES + FRAME_HEADER_BYTES + 4);
  if (!buf) die(1, "out of memory");
  unsigned char *payload = buf + FRAME_HEADER_BYTES + 4;
  uint64_t total = 0;
  uint32_t frames = 0;
  for (int eof = 0; !eof;) {
    size_t have = 0;
    while (have < TARGET_FRAME_BYTES) {
      size_t r = read_some(from, payload + have, TARGET_FRAME_BYTES - have, "the command's output");
      if (r == 0) {
        eof = 1;
        break;
      }
      have += r;
    }
    if (have == 0) break;
    buf[0] = FRAME_DATA;
    put_be32(buf + 1, (uint32_t)have + 4);
    put_be32(buf + 5, crc32_gzip_refl(0, payload, have));
    write_full(out_fd, buf, have + FRAME_HEADER_BYTES + 4, "the framed output", EXIT_IO);
    total += have;
    frames++;
    framed_bytes += have + FRAME_HEADER_BYTES + 4;
    progress(0);
  }
  close(from);
  if (command_status(argv) != 0) die(EXIT_COMMAND, "%s failed: no end frame written", argv[0]);
  unsigned char end[FRAME_HEADER_BYTES + 12] = {FRAME_END};
  put_be32(end + 1, 12);
  put_be32(end + 5, (uint32_t)(total >> 32));
  put_be32(end + 9, (uint32_t)total);
  put_be32(end + 13, frames);
  write_full(out_fd, end, sizeof end, "the framed output", EXIT_IO);
  tls_finish();
  framed_bytes += sizeof end;
  progress(1);
  return 0;
}

/* ---- receive ------------------------------------------------------------------------------- */

static int to_cmd = -1;
static char **command_argv = NULL;

/* syncfs behind the data: a thread that flushes the pool whenever sync_every more bytes went on. */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static uint64_t passed = 0, sync_wanted = 0;
static int sync_fd = -1;

static void *sync_loop(void *arg) {
  (void)arg;
  uint64_t done = 0;
  for (;;) {
    pthread_mutex_lock(&sync_lock);
    while (sync_wanted == done) pthread_cond_wait(&sync_cond, &sync_lock);
    done = sync_wanted;
    pthread_mutex_unlock(&sync_lock);
    syncfs(sync_fd);
  }
  return NULL;
}

/* Writes bytes to the command; if it stopped reading, says how it ended and stops. */
static void write_to_command(const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(to_cmd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EPIPE) {
      command_status(command_argv);
      die(EXIT_COMMAND, "%s stopped reading the stream", command_argv[0]);
    } else if (w < 0 && errno != EINTR) {
      die(EXIT_IO, "writing to the command: %s", why(errno));
    }
  }
}

/* What goes to the command, gathered: a stream of many small files is mostly commands of a
 * few dozen bytes, and a write(2) for each (with a wake-up of the reader) would cost more than
 * the data. Only bytes that may go on are gathered (a gated unit after its approval), so the
 * order and the gating stay as they were; flush_to_command() before the input is done with. */
static unsigned char out_buf[256 * 1024];
static size_t out_len = 0;

static void flush_to_command(void) {
  write_to_command(out_buf, out_len);
  out_len = 0;
}

/* Passes bytes on to the command (gathered, see out_buf). */
static void pass_on(const unsigned char *p, size_t n) {
  if (out_len + n > sizeof out_buf) flush_to_command();
  if (n >= sizeof out_buf) write_to_command(p, n);
  else memcpy(out_buf + out_len, p, n), out_len += n;
}

/* Asks the sync thread for one more syncfs (it runs them one after another). */
static void want_sync(void) {
  if (sync_fd < 0) return;
  pthread_mutex_lock(&sync_lock);
  sync_wanted++;
  pthread_cond_signal(&sync_cond);
  pthread_mutex_unlock(&sync_lock);
}

/* Bytes passed on so far; wakes the sync thread every sync_every of them. */
static void count_passed(size_t n) {
  if (sync_fd < 0) return;
  uint64_t before = passed / sync_every;
  passed += n;
  if (passed / sync_every != before) want_sync();
}

/* Metadata for the checker, batched. */
static unsigned char meta[64 * 1024];
static size_t meta_len = 0;

static void record(char type, const unsigned char *p, size_t n) {
  unsigned char h[5] = {(unsigned char)type, n, n >> 8, n >> 16, n >> 24};
  write_full(check_fd, h, 5, "the checker", EXIT_REFUSED);
  if (n) write_full(check_fd, p, n, "the checker", EXIT_REFUSED);
}
static void flush_meta(void) {
  if (meta_len) record('M', meta, meta_len);
  meta_len = 0;
}
static void add_meta(const unsigned char *p, size_t n) {
  if (meta_len + n > sizeof meta) flush_meta();
  if (n > sizeof meta) record('M', p, n);
  else memcpy(meta + meta_len, p, n), meta_len += n;
}
/* Sends the metadata so far plus a question, and waits for the checker's answer. */
static void ask(char type) {
  flush_meta();
  record(type, NULL, 0);
  unsigned char answer = 0;
  if (!read_full(check_fd, &answer, 1, "the checker") || answer != 'y') die(EXIT_REFUSED, "the checker refused the stream");
}

/* Data-only commands of send stream v1: they act on paths inside the received subvolume. */
static int ungated(unsigned cmd) {
  return (cmd >= 3 && cmd <= 15) || (cmd >= 17 && cmd <= 20) || cmd == 22;
}

/* The send stream splitter: where the payload bytes are. */
static enum { S_HEADER, S_CMD_HEADER, S_GATED, S_PAYLOAD, S_ENDED } state = S_HEADER;
static unsigned char unit[MAX_COMMAND_BYTES];
static size_t unit_len = 0, unit_want = STREAM_HEADER_BYTES;
static uint64_t skip = 0, commands = 0;
static unsigned pending_cmd = 0;

/* A gated unit is whole: the checker sees it and answers before the command gets it. */
static void gated_unit_done(void) {
  add_meta(unit, unit_len);
  ask('Q');
  pass_on(unit, unit_len);
  if (state == S_GATED) commands++;
  state = state == S_GATED && pending_cmd == CMD_END ? S_ENDED : S_CMD_HEADER;
  unit_len = 0, unit_want = CMD_HEADER_BYTES;
}

/* A command header is whole: gate the command, or pass it on with its payload. */
static void command_header_done(void) {
  uint32_t len = unit[0] | unit[1] << 8 | unit[2] << 16 | (uint32_t)unit[3] << 24;
  pending_cmd = unit[4] | unit[5] << 8;
  if (len > MAX_COMMAND_BYTES - CMD_HEADER_BYTES) {
    add_meta(unit, unit_len);
    ask('Q'); /* the checker says why it refuses it */
    die(EXIT_REFUSED, "invalid btrfs send stream: command %u claims %u bytes (limit %u)", pending_cmd, len,
        MAX_COMMAND_BYTES);
  }
  if (commands == 0 || !ungated(pending_cmd)) {
    state = S_GATED, unit_want = CMD_HEADER_BYTES + len; /* the header stays in unit */
    if (len == 0) gated_unit_done();
    return;
  }
  add_meta(unit, unit_len);
  pass_on(unit, unit_len);
  unit_len = 0;
  if (len == 0) unit_want = CMD_HEADER_BYTES, commands++;
  else state = S_PAYLOAD, skip = len;
}

static void split(const unsigned char *p, size_t n) {
  while (n > 0) {
    if (state == S_PAYLOAD) {
      size_t k = n < skip ? n : (size_t)skip;
      pass_on(p, k);
      p += k, n -= k, skip -= k;
      if (skip == 0) state = S_CMD_HEADER, unit_want = CMD_HEADER_BYTES, commands++;
      continue;
    }
    if (state == S_ENDED) { /* anything after END: the checker says why it is refused */
      add_meta(p, n);
      ask('Q');
      die(EXIT_REFUSED, "invalid btrfs send stream: data follows the END command");
    }
    size_t k = unit_want - unit_len < n ? unit_want - unit_len : n;
    memcpy(unit + unit_len, p, k);
    unit_len += k, p += k, n -= k;
    if (unit_len < unit_want) continue;
    if (state == S_CMD_HEADER) command_header_done();
    else gated_unit_done();
  }
}

static const char *const CUT = "the stream ended before its last frame (connection lost?)";

static int run_receive(char **argv) {
  if (check_fd < 0) die(EXIT_USAGE, "receive needs --check-fd");
  command_argv = argv;
  if (tls.mode) tls_open(in_fd, &tls, idle_ms);
  to_cmd = start_command(argv, 1);
  if (sync_dir && sync_every > 0) {
    sync_fd = open(sync_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    pthread_t t;
    if (sync_fd >= 0 && pthread_create(&t, NULL, sync_loop, NULL) != 0) sync_fd = -1;
  }
  unsigned char *body = malloc(MAX_FRAME_BYTES + 16);
  if (!body) die(1, "out of memory");
  uint64_t total = 0;
  uint32_t frames = 0;
  const char *what = "the framed input";
  for (;;) {
    unsigned char h[FRAME_HEADER_BYTES];
    if (!read_full(in_fd, h, sizeof h, what)) die(EXIT_CORRUPT, "%s", CUT);
    uint32_t len = get_be32(h + 1);
    if (h[0] == FRAME_DATA) {
      if (len <= 4 || len > 4 + MAX_FRAME_BYTES) die(EXIT_CORRUPT, "invalid data frame length %u", len);
    } else if (h[0] == FRAME_END) {
      if (len != 12) die(EXIT_CORRUPT, "invalid end frame length %u", len);
    } else {
      die(EXIT_CORRUPT, "unknown frame type %u", h[0]);
    }
    if (!read_full(in_fd, body, len, what)) die(EXIT_CORRUPT, "%s", CUT);
    framed_bytes += sizeof h + len;
    progress(0);
    if (h[0] == FRAME_END) {
      uint64_t t = (uint64_t)get_be32(body) << 32 | get_be32(body + 4);
      if (t != total || get_be32(body + 8) != frames) die(EXIT_CORRUPT, "the stream lost or repeated a frame (totals differ)");
      break;
    }
    if (crc32_gzip_refl(0, body + 4, len - 4) != get_be32(body))
      die(EXIT_CORRUPT, "checksum mismatch before byte %llu (the stream was altered on the way)",
          (unsigned long long)(total + len - 4));
    total += len - 4;
    frames++;
    split(body + 4, len - 4);
    count_passed(len - 4);
  }
  progress(1);
  /* The last bytes are in: start flushing them while the checker approves the stream and the
   * command finishes, so that the caller's final sync finds little left to write. */
  want_sync();
  /* The checker never sees ungated payloads: a cut in one is refused here. A cut anywhere
   * else reaches the checker with the rest of the metadata, which says why it is refused. */
  if (state == S_PAYLOAD) die(EXIT_REFUSED, "invalid btrfs send stream: stream ends in the middle of a command");
  if (unit_len > 0) add_meta(unit, unit_len);
  flush_to_command();
  ask('Z');
  close(to_cmd);
  if (command_status(argv) != 0) die(EXIT_COMMAND, "%s failed", argv[0]);
  return 0;
}

static int int_option(const char *o, const char *v) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n < 0 || n > 1L << 30) die(EXIT_USAGE, "option %s needs a number, got %s", o, v);
  return (int)n;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--version")) {
    puts("dotmesh-pump " PUMP_VERSION);
    return 0;
  }
  if (argc < 2) die(EXIT_USAGE, "usage: dotmesh-pump --version | send|receive [options] -- command...");
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the server that started it */
  const char *mode = argv[1];
  int i = 2;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) die(EXIT_USAGE, "option %s needs a value", o);
    i++;
    if (!strcmp(o, "--in-fd")) in_fd = int_option(o, v);
    else if (!strcmp(o, "--out-fd")) out_fd = int_option(o, v);
    else if (!strcmp(o, "--check-fd")) check_fd = int_option(o, v);
    else if (!strcmp(o, "--progress-fd")) progress_fd = int_option(o, v);
    else if (!strcmp(o, "--idle-ms")) idle_ms = int_option(o, v);
    else if (!strcmp(o, "--pipe-bytes")) pipe_bytes = int_option(o, v);
    else if (!strcmp(o, "--sync-dir")) sync_dir = v;
    else if (!strcmp(o, "--sync-every")) sync_every = strtoull(v, NULL, 10);
    else if (!strcmp(o, "--tls")) tls.mode = v;
    else if (!strcmp(o, "--tls-cert")) tls.cert = v;
    else if (!strcmp(o, "--tls-key")) tls.key = v;
    else if (!strcmp(o, "--tls-ca")) tls.ca_file = v;
    else if (!strcmp(o, "--tls-pin")) tls.pin_cert = v;
    else if (!strcmp(o, "--tls-ca-pin")) tls.pin_ca = v;
    else if (!strcmp(o, "--tls-name")) tls.name = v;
    else if (!strcmp(o, "--tls-alpn")) tls.alpn = v;
    else if (!strcmp(o, "--tls-prefix-fd")) tls.prefix_fd = int_option(o, v);
    else if (!strcmp(o, "--stream-key-fd")) tls.key_fd = int_option(o, v);
    else if (!strcmp(o, "--handshake-ms")) tls.handshake_ms = int_option(o, v);
    else die(EXIT_USAGE, "unknown option %s", o);
  }
  if (i + 1 >= argc) die(EXIT_USAGE, "missing -- command...");
  signal(SIGPIPE, SIG_IGN);
  if (!strcmp(mode, "send")) return run_send(argv + i + 1);
  if (!strcmp(mode, "receive")) return run_receive(argv + i + 1);
  die(EXIT_USAGE, "unknown mode %s (send | receive)", mode);
  return EXIT_USAGE;
}
