/* Debounce usage: ten calls in a burst run the callback once, with the last call's argument,
 * however many processes share the id "example:rebuild". */
#include <dlock.h>
#include <stdio.h>

static void rebuild(const void *arg, size_t len, void *userdata) {
    (void)userdata;
    printf("rebuilding after the burst (last argument: %.*s)\n", (int)len, (const char *)arg);
}

int main(void) {
    dlock_client *client;
    int rc = dlock_client_open_env(&client, NULL);
    if (rc < 0) {
        fprintf(stderr, "connect: %s: %s\n", dlock_strerror(rc), dlock_errmsg());
        return 2;
    }
    dlock_debounce_options o = {.wait_ms = 300, .callback = rebuild};
    dlock_debounce *d;
    if ((rc = dlock_debounce_new(&d, client, "example:rebuild", &o)) < 0) {
        fprintf(stderr, "debounce: %s\n", dlock_errmsg());
        dlock_client_close(client);
        return 2;
    }
    for (int i = 0; i < 10; i++) {
        char arg[16];
        int n = snprintf(arg, sizeof arg, "change %d", i);
        dlock_debounce_call(d, arg, (size_t)n);
    }
    dlock_debounce_free(d); /* waits for the decision */
    dlock_client_close(client);
    return 0;
}
