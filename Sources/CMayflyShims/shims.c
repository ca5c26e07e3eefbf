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

#ifdef __linux__
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

static int mayfly_release_executable_code(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    int *result = data;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        // Read-only executable segments only: their pages are never dirty.
        if (header->p_type != PT_LOAD || !(header->p_flags & PF_X) || (header->p_flags & PF_W)) continue;
        uintptr_t start = (info->dlpi_addr + header->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + header->p_vaddr + header->p_memsz) & ~(page - 1);
        if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) != 0 && *result == 0) *result = errno;
    }
    return 1;  // the first object is the executable itself: it alone
}

int mayfly_release_startup_code(void) {
    int result = 0;
    dl_iterate_phdr(mayfly_release_executable_code, &result);
    return result;
}
#else
int mayfly_release_startup_code(void) { return 0; }
#endif
