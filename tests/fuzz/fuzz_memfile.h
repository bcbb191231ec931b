/* fuzz_memfile.h - hands a fuzz input to readers that take a path (GGUF, safetensors).
 *
 * The bytes go into an anonymous memory file (memfd_create) reachable as /proc/self/fd/N: a
 * regular file to stat and mmap, as the readers insist, with no disk I/O and nothing left
 * behind if the fuzzer dies. Used only by the libFuzzer targets in this folder; one call per
 * input, so it must stay cheap. A failure here is the harness's, not the reader's: it aborts.
 */
#ifndef QF_FUZZ_MEMFILE_H
#define QF_FUZZ_MEMFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data into a fresh memory file; its path goes to path, its fd is returned (close it
 * when the reader is done). */
static inline int qf_fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t path_len)
{
    int fd = memfd_create("qf-fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            perror("write memfd");
            abort();
        }
        off += (size_t)n;
    }
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

/* Reading every byte of [p, p + n) makes ASan or the MMU object to a range the reader handed
 * out that does not exist; the sum keeps the loop from being optimised away. */
static inline unsigned qf_fuzz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

#endif
