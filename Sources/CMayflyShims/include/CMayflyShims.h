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

/// Unmaps the executable's code pages from this process (MADV_DONTNEED on its executable
/// segments), once start-up is over: they are clean file pages, so the kernel maps each back
/// from the page cache when it next runs, and the process then keeps resident only the code
/// it serves with, not the code of start-up or the pages mapped around it (the kernel maps
/// runs of 64 KB around each page touched). 0, or the errno of the first failing `madvise`.
int mayfly_release_startup_code(void);

#endif
