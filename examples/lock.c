/* Minimal lock usage: take the lock "example:report", do the work, release.
 * Run with REDIS_URL=redis://127.0.0.1:6379 (the default) pointing at a Redis server. */
#include <dlock.h>
#include <stdio.h>

int main(void) {
    dlock_client *client;
    int rc = dlock_client_open_env(&client, NULL);
    if (rc < 0) {
        fprintf(stderr, "connect: %s: %s\n", dlock_strerror(rc), dlock_errmsg());
        return 2;
    }
    dlock_lock_options lo = {.lease_ms = 5000};
    dlock_lock *lock;
    if ((rc = dlock_lock_new(&lock, client, "example:report", &lo)) < 0) {
        fprintf(stderr, "lock: %s\n", dlock_errmsg());
        dlock_client_close(client);
        return 2;
    }
    rc = dlock_lock_acquire(lock, NULL);
    if (rc == DLOCK_OK) {
        printf("acquired with token %s; working...\n", dlock_lock_token(lock));
        rc = dlock_lock_release(lock);
        printf("release: %s\n", dlock_strerror(rc));
    } else if (rc == DLOCK_NOT_ACQUIRED) {
        printf("someone else holds the lock\n");
    } else {
        fprintf(stderr, "acquire failed: %s: %s\n", dlock_strerror(rc), dlock_errmsg());
    }
    dlock_lock_free(lock);
    dlock_client_close(client);
    return rc < 0 ? 2 : 0;
}
