/*
 * The benchmark's floor: a "perfect" rustc cache that does the least work a cache can do.
 * One static process per compile; no daemon, no key computation beyond hashing argv, no
 * checks. Build: cc -O2 -static -o floor bench/floor.c
 *
 * As RUSTC_WRAPPER:
 *   FLOOR_MODE=record : run rustc (stderr teed), then hard-link the unit's outputs
 *                       (<out-dir>/[lib]<crate-name><extra-filename>*) into
 *                       $FLOOR_DIR/<fnv64(argv)>/ and save its stderr there;
 *   FLOOR_MODE=replay : hard-link the saved outputs back into the out-dir, touch them
 *                       (mtime now, so cargo sees them fresh), print the saved stderr, exit 0;
 *                       unknown invocations run rustc.
 * Probes (no --crate-name, or input from stdin) always run rustc.
 *
 * Only meaningful for replaying the exact same build in the same directory: that is all a
 * floor needs. Not part of zcfs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *arg_after(int argc, char **argv, const char *flag) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0) return argv[i + 1];
    return NULL;
}

static const char *extra_filename(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *p = strstr(argv[i], "extra-filename=");
        if (p) return p + strlen("extra-filename=");
    }
    return "";
}

static int is_probe(int argc, char **argv) {
    if (!arg_after(argc, argv, "--crate-name")) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-") == 0 || strncmp(argv[i], "--print", 7) == 0) return 1;
    return 0;
}

static uint64_t key_of(int argc, char **argv) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 1; i < argc; i++) {
        for (const char *c = argv[i]; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static int matches(const char *name, const char *stem) {
    size_t n = strlen(stem);
    if (strncmp(name, stem, n) == 0) return 1;
    return strncmp(name, "lib", 3) == 0 && strncmp(name + 3, stem, n) == 0;
}

static void die(const char *what) {
    perror(what);
    exit(101);
}

static int run_rustc(int argc, char **argv, int stderr_copy) {
    int pipefd[2] = {-1, -1};
    if (stderr_copy >= 0 && pipe(pipefd) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (stderr_copy >= 0) {
            dup2(pipefd[1], 2);
            close(pipefd[0]);
            close(pipefd[1]);
        }
        execvp(argv[1], argv + 1);
        die("exec rustc");
    }
    if (stderr_copy >= 0) {
        close(pipefd[1]);
        char buf[65536];
        ssize_t n;
        while ((n = read(pipefd[0], buf, sizeof buf)) > 0) {
            if (write(2, buf, n) < 0 || write(stderr_copy, buf, n) < 0) die("write");
        }
        close(pipefd[0]);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) die("waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = getenv("FLOOR_MODE");
    const char *dir = getenv("FLOOR_DIR");
    if (!mode || !dir || is_probe(argc, argv)) {
        execvp(argv[1], argv + 1);
        die("exec rustc");
    }
    const char *out_dir = arg_after(argc, argv, "--out-dir");
    char stem[1024], unit[4096], path[8192], src[8192];
    snprintf(stem, sizeof stem, "%s%s", arg_after(argc, argv, "--crate-name"),
             extra_filename(argc, argv));
    snprintf(unit, sizeof unit, "%s/%016llx", dir, (unsigned long long)key_of(argc, argv));

    if (strcmp(mode, "replay") == 0) {
        DIR *d = opendir(unit);
        if (!d) {
            execvp(argv[1], argv + 1);
            die("exec rustc");
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(src, sizeof src, "%s/%s", unit, e->d_name);
            if (strcmp(e->d_name, "stderr") == 0) {
                int fd = open(src, O_RDONLY);
                char buf[65536];
                ssize_t n;
                while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0)
                    if (write(2, buf, n) < 0) die("write");
                if (fd >= 0) close(fd);
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", out_dir, e->d_name);
            unlink(path);
            if (link(src, path) != 0) die("link");
            if (utimensat(AT_FDCWD, path, NULL, 0) != 0) die("utimensat");
        }
        closedir(d);
        return 0;
    }

    /* record */
    mkdir(dir, 0755);
    mkdir(unit, 0755);
    snprintf(path, sizeof path, "%s/stderr", unit);
    int err = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err < 0) die("open stderr copy");
    int code = run_rustc(argc, argv, err);
    close(err);
    if (code != 0) return code;
    DIR *d = opendir(out_dir);
    if (!d) die("opendir out-dir");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!matches(e->d_name, stem)) continue;
        snprintf(src, sizeof src, "%s/%s", out_dir, e->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        snprintf(path, sizeof path, "%s/%s", unit, e->d_name);
        unlink(path);
        if (link(src, path) != 0) die("link into the floor store");
    }
    closedir(d);
    return 0;
}
