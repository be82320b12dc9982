/* The holder record of a lock id: text a holder leaves beside the lock ("{ID}:holder", in the
 * id's Cluster slot) to say who it is -- for `dlock status`, never for locking decisions. It holds
 * "TOKEN\nTEXT" and lives as long as the lease it describes; readers show it only while TOKEN
 * still holds the lock. Written after the acquire, so it is best effort: a failure to write it
 * never fails a lock call. */
#ifndef DLOCK_HOLDER_H
#define DLOCK_HOLDER_H

#include "internal.h"

/* Records `text` for the hold of `token` for ms (> 0; -1 = no expiry). Errors are dropped. */
void dlock__holder_write(dlock_client *c, const char *key, size_t key_len, const char *token,
                         size_t token_len, const char *text, int64_t ms);
/* Makes the record live as long as the hold again (after a renewal or extend; -1 = forever). */
void dlock__holder_touch(dlock_client *c, const char *key, size_t key_len, int64_t ms);

#endif
