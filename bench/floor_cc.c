/*
 * The C benchmarks' floor: a "perfect" C compiler cache that does the least work a cache
 * can do per compile. One static process; no daemon, no key beyond a hash of argv and the
 * working directory, no checks of any input. Build: cc -O2 -static -o floor-cc
 * bench/floor_cc.c
 *
 * As CC="floor-cc gcc":
 *   FLOOR_MODE=record : run the compiler, then copy the files it wrote (the arguments of
 *                       -o and -MF) into $FLOOR_DIR/<fnv64(cwd, argv)>/0, 1, ...;
 *   FLOOR_MODE=replay : copy them back (a new file each, as a cache writes them), exit 0;
 *                       an unknown command runs the compiler.
 *
 * Only meaningful for replaying the exact same build in the same directory: that is all a
 * floor needs. Not part of zcfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const char *s) {
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ULL;
  }
  h ^= 0xff;
  return h * 0x100000001b3ULL;
}

static int copy(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -1;
  struct stat st;
  if (fstat(in, &st) != 0) { close(in); return -1; }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.floor-%d", to, (int)getpid());
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) { close(in); return -1; }
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, left, 0);
    if (n <= 0) { close(in); close(out); unlink(tmp); return -1; }
    left -= n;
  }
  close(in);
  close(out);
  return rename(tmp, to);
}

static int run(char **argv) {
  pid_t pid = fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: floor-cc COMPILER ARGS...\n");
    return 2;
  }
  const char *mode = getenv("FLOOR_MODE");
  const char *dir = getenv("FLOOR_DIR");
  char cwd[4096];
  if (!mode || !dir || !getcwd(cwd, sizeof cwd)) return run(argv + 1);
  uint64_t h = fnv(0xcbf29ce484222325ULL, cwd);
  for (int i = 1; i < argc; i++) h = fnv(h, argv[i]);
  char entry[4096];
  snprintf(entry, sizeof entry, "%s/%016llx", dir, (unsigned long long)h);
  /* The files this command writes, in argument order. */
  const char *outs[8];
  int nout = 0;
  for (int i = 1; i + 1 < argc && nout < 8; i++)
    if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "-MF")) outs[nout++] = argv[++i];
  char saved[4200];
  if (!strcmp(mode, "replay")) {
    int ok = 1;
    for (int k = 0; k < nout && ok; k++) {
      snprintf(saved, sizeof saved, "%s/%d", entry, k);
      ok = copy(saved, outs[k]) == 0;
    }
    if (ok) return 0;
    return run(argv + 1);
  }
  int code = run(argv + 1);
  if (code != 0) return code;
  mkdir(dir, 0755);
  mkdir(entry, 0755);
  for (int k = 0; k < nout; k++) {
    snprintf(saved, sizeof saved, "%s/%d", entry, k);
    if (copy(outs[k], saved) != 0) return code;
  }
  return code;
}
