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
#ifdef __linux__
#include <sys/prctl.h>
#endif

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

/* Writes msg to stderr; async-signal-safe, for the child between fork and exec. */
static void child_say(const char *msg) {
    ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
    (void)w;
}

/* In the child, before exec: asks the kernel to SIGKILL the child when dlock dies, however it
 * dies (SIGKILL included), so the command never runs on without dlock. Nobody renews the lease
 * then, and another holder may take the lock as soon as it expires: the command must stop
 * before that, so SIGKILL, not SIGTERM (a command may catch or ignore SIGTERM and run on with
 * no grace period to bound it). The kernel sends the signal when the *thread* that forked exits,
 * so child_spawn is called from the main thread, which lives as long as the process. If dlock
 * died between fork and prctl, the signal will never come: the child has been handed to another
 * parent by then, so the getppid check catches that.
 * Only the command's own process is covered. Its descendants could be reached by giving it a
 * process group of its own, but then it would no longer be in the terminal's foreground group
 * (reading the terminal stops it with SIGTTIN, Ctrl-Z would stop it and not dlock), and dlock
 * would have to do a shell's job control; flock(1) does not either. */
static void die_with_parent(pid_t parent) {
#ifdef __linux__
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        child_say("dlock: cannot tie the command to dlock's life (prctl PR_SET_PDEATHSIG)\n");
        _exit(CLI_EX_OSERR);
    }
    if (getppid() != parent) {
        _exit(128 + SIGKILL); /* dlock is gone already; nobody waits for this status */
    }
#else
    (void)parent; /* no equivalent here: the command outlives a killed dlock (see dlock.1) */
#endif
}

pid_t child_spawn(char *const argv[]) {
    /* Descriptors opened since start-up are Redis connections: the command must not hold them
     * open after we exit. Done before fork, since after fork in a threaded process only
     * async-signal-safe calls are allowed. */
    each_fd(mark_cloexec);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("cannot start %s: fork: %s", argv[0], strerror(errno));
        return -1;
    }
    if (pid > 0) {
        return pid;
    }
    /* Child: if dlock dies, the command dies with it. */
    die_with_parent(parent);
    /* Give the command the signal state we were started with. exec resets handled signals to
     * default, but not ignored ones, so SIGPIPE is reset by hand. */
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
