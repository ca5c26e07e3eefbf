// Built with _GNU_SOURCE so that <sys/socket.h> declares struct ucred: the checks below fail
// the build if mayfly_ucred ever stops matching it.
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CMayflyShims.h"

#ifdef __linux__
_Static_assert(sizeof(mayfly_ucred) == sizeof(struct ucred), "mayfly_ucred size");
_Static_assert(offsetof(mayfly_ucred, pid) == offsetof(struct ucred, pid), "mayfly_ucred pid");
_Static_assert(offsetof(mayfly_ucred, uid) == offsetof(struct ucred, uid), "mayfly_ucred uid");
_Static_assert(offsetof(mayfly_ucred, gid) == offsetof(struct ucred, gid), "mayfly_ucred gid");
#endif
