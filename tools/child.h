/* child.h: running the user's command as a child process, and the signal plumbing around it. */
#ifndef DLOCK_CLI_CHILD_H
#define DLOCK_CLI_CHILD_H

#include <signal.h>
#include <sys/types.h>

/* Wake-up signals sent to the main thread by the CLI's own threads. */
#define CHILD_SIG_ACQUIRED SIGUSR1 /* the acquire helper thread finished */
#define CHILD_SIG_LOST     SIGUSR2 /* the library's on_lost callback ran */

/* Records the file descriptors open at start-up: those are the caller's to pass on to the
 * command (as flock does); every other one (Redis connections) is the CLI's own. Call first. */
void child_note_inherited_fds(void);

/* Blocks SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1 and SIGUSR2 in the calling thread, so that
 * every thread created afterwards (including the library's) leaves them to the thread that
 * calls sigtimedwait with child_signal_set(). Saves the previous mask for the child. Ignores
 * SIGPIPE (a dropped Redis connection must be an error, not death). */
void child_block_signals(void);

/* The set of signals blocked by child_block_signals. */
const sigset_t *child_signal_set(void);

/* Starts argv[0] (searched in PATH) with the signal mask and dispositions the CLI started with
 * and without the CLI's own file descriptors. If exec fails the child prints why and exits 126
 * or 127. On Linux the child gets SIGKILL when dlock dies (PR_SET_PDEATHSIG), so call this from
 * the main thread: the kernel sends that signal when the thread that forked exits.
 * Returns the pid, or -1 after printing why (fork failed). */
pid_t child_spawn(char *const argv[]);

/* Passes a signal the CLI received on to the child, unless the kernel sent it to the whole
 * foreground process group (Ctrl-C, terminal hangup): the child, in the same group, already
 * has it, and a second SIGINT makes some programs (shells, REPLs) behave differently. */
void child_forward(pid_t pid, const siginfo_t *si);

/* The shell's exit status for a wait status: the exit code, or 128+N for signal N. */
int child_exit_code(int wstatus);

#endif /* DLOCK_CLI_CHILD_H */
