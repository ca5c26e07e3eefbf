#ifndef CMAYFLY_SHIMS_H
#define CMAYFLY_SHIMS_H

#include <stdint.h>

/// Linux's `struct ucred` (what `SO_PEERCRED` returns): Glibc's Swift module declares it only
/// under `_GNU_SOURCE`, which Swift's Glibc module is built without. shims.c checks, against
/// the real type, that this one has its size and layout.
typedef struct mayfly_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
} mayfly_ucred;

/// Connects `fd` (an AF_UNIX stream socket) to the socket file at `path`: 0, or the errno
/// (ENAMETOOLONG when `path` does not fit in `sun_path`). Filling a `sockaddr_un` from Swift
/// takes unsafe pointer work that every Unix-socket client would repeat.
int mayfly_unix_connect(int fd, const char *path);

#endif
