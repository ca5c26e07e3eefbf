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

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int mayfly_unix_connect(int fd, const char *path) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t length = strlen(path);
    if (length >= sizeof address.sun_path) return ENAMETOOLONG;
    memcpy(address.sun_path, path, length + 1);
    return connect(fd, (const struct sockaddr *)&address, sizeof address) == 0 ? 0 : errno;
}
