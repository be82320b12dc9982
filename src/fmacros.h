/* Feature-test macros. Included first by every source file, before any system header, so the
 * whole library sees one consistent set of POSIX/GNU declarations. */
#ifndef DLOCK_FMACROS_H
#define DLOCK_FMACROS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getrandom, pipe2, accept4, strcasestr */
#endif

#endif
