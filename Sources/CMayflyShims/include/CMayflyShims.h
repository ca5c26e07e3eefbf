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

#endif
