/* duration.h: the duration syntax of the dlock command ("500ms", "1.5s", "10s", "2m", "1h"). */
#ifndef DLOCK_CLI_DURATION_H
#define DLOCK_CLI_DURATION_H

#include <stdint.h>

/* Parses `text` as a non-negative duration: a decimal number with an optional fraction and an
 * optional unit (ms, s, m, h); a bare number is seconds, as for sleep(1), flock -w and
 * timeout(1). A fraction finer than a millisecond is rounded up, so a non-zero duration never
 * becomes 0 ms. At most `max_ms`.
 * Returns 0 and sets *out_ms, or -1 and sets *why to a static phrase that completes
 * "'TEXT' ..." (e.g. "is negative"). */
int duration_parse(const char *text, int64_t max_ms, int64_t *out_ms, const char **why);

#endif /* DLOCK_CLI_DURATION_H */
