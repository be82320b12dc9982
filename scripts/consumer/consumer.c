/* consumer.c: a program built against an installed dlock, the way its users build theirs. It
 * checks that the header and the library it runs with agree, and that both are callable. */
#include <dlock.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (strcmp(dlock_version(), DLOCK_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s, library %s\n", DLOCK_VERSION_STRING, dlock_version());
        return 1;
    }
    dlock_client *c = NULL;
    /* No server is needed: a bad URL fails before any connection, with a message. */
    int rc = dlock_client_open(&c, "nope://x", NULL);
    if (rc != DLOCK_EINVAL || c != NULL || dlock_errmsg()[0] == '\0') {
        fprintf(stderr, "consumer: dlock_client_open gave %d (%s)\n", rc, dlock_strerror(rc));
        return 1;
    }
    printf("consumer: libdlock %s ok\n", dlock_version());
    return 0;
}
