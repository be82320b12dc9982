/* child.c: fork/exec of the command, signal masks, and which descriptors the command inherits. */
#include "child.h"

#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TRACKED_FD 1024

static unsigned char inherited[MAX_TRACKED_FD];
static sigset_t blocked, saved_mask;
static int signals_blocked;

/* Calls fn(fd) for every open descriptor above stderr, except the directory stream's own. */
static void each_fd(void (*fn)(int fd)) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return; /* no /proc: descriptors stay as they are, which is only untidy */
    }
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == '\0' && e->d_name[0] != '.' && fd > 2 && fd != own) {
            fn((int)fd);
        }
    }
    closedir(d);
}

static void note_fd(int fd) {
    if (fd < MAX_TRACKED_FD) {
        inherited[fd] = 1;
    }
}

static void mark_cloexec(int fd) {
    if (fd >= MAX_TRACKED_FD || !inherited[fd]) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0) {
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
}

void child_note_inherited_fds(void) {
    each_fd(note_fd);
}

static void on_sigchld(int sig) {
    (void)sig; /* only so that SIGCHLD is never discarded as ignored; sigtimedwait takes it */
}

void child_block_signals(void) {
    if (signals_blocked) {
        return;
    }
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, CHILD_SIG_ACQUIRED);
    sigaddset(&blocked, CHILD_SIG_LOST);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &blocked, &saved_mask);
    signals_blocked = 1;
}

const sigset_t *child_signal_set(void) {
    return &blocked;
}

pid_t child_spawn(char *const argv[]) {
    /* Descriptors opened since start-up are Redis connections: the command must not hold them
     * open after we exit. Done before fork, since after fork in a threaded process only
     * async-signal-safe calls are allowed. */
    each_fd(mark_cloexec);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("cannot start %s: fork: %s", argv[0], strerror(errno));
        return -1;
    }
    if (pid > 0) {
        return pid;
    }
    /* Child: give the command the signal state we were started with. exec resets handled
     * signals to default, but not ignored ones, so SIGPIPE is reset by hand. */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    if (signals_blocked) {
        sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    }
    execvp(argv[0], argv);
    int err = errno;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "dlock: cannot run '%s': %s\n", argv[0], strerror(err));
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(err == ENOENT || err == ENOTDIR ? CLI_EX_NOT_FOUND : CLI_EX_CANNOT_EXEC);
}

void child_forward(pid_t pid, const siginfo_t *si) {
    if (si->si_code > 0) {
        return; /* sent by the kernel to the process group, the child included */
    }
    kill(pid, si->si_signo);
}

int child_exit_code(int wstatus) {
    if (WIFEXITED(wstatus)) {
        return WEXITSTATUS(wstatus);
    }
    if (WIFSIGNALED(wstatus)) {
        return 128 + WTERMSIG(wstatus);
    }
    return CLI_EX_SOFTWARE;
}
