/* json.h: JSON output of the dlock command (status --json, acquire --json). */
#ifndef DLOCK_CLI_JSON_H
#define DLOCK_CLI_JSON_H

#include <stddef.h>

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF), else 0. */
int json_is_utf8(const char *s, size_t len);

/* Writes s[0..len) to stdout as a JSON string, which is always valid JSON: quotes, backslashes
 * and control characters are escaped, well-formed UTF-8 passes through, and each byte that is
 * not part of well-formed UTF-8 becomes U+FFFD. Ids are arbitrary bytes, so where that loses
 * information the caller also gives the bytes in base64 (json_base64). */
void json_string(const char *s, size_t len);

/* Writes s[0..len) to stdout as a JSON string holding its standard base64 (RFC 4648, padded). */
void json_base64(const char *s, size_t len);

#endif /* DLOCK_CLI_JSON_H */
