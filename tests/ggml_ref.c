/* ggml_ref.c - dlopen of ggml's prebuilt libraries for the tests (see ggml_ref.h). */
#include "ggml_ref.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGML_TYPE_SCAN 64   /* ggml's type ids are below this */

static void *open_lib(const char *dir, const char *file, char *why, size_t why_len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h)
        snprintf(why, why_len, "cannot load %s: %s", path, dlerror());
    return h;
}

bool ggml_ref_open(ggml_ref *g, char *why, size_t why_len)
{
    memset(g, 0, sizeof *g);
    const char *dir = getenv("QF_GGML_DIR");
#ifdef QF_GGML_DIR_DEFAULT
    if (!dir || !*dir)
        dir = QF_GGML_DIR_DEFAULT;
#endif
    if (!dir || !*dir) {
        snprintf(why, why_len, "QF_GGML_DIR is not set");
        return false;
    }
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    if (!(g->base = open_lib(dir, "libggml-base.so", why, why_len)))
        return false;
    if (!(g->cpu = open_lib(dir, "libggml-cpu-x64.so", why, why_len))) {
        ggml_ref_close(g);
        return false;
    }
    *(void **)&g->type_name = dlsym(g->base, "ggml_type_name");
    *(void **)&g->type_size = dlsym(g->base, "ggml_type_size");
    *(void **)&g->blck_size = dlsym(g->base, "ggml_blck_size");
    *(void **)&g->quantize_chunk = dlsym(g->base, "ggml_quantize_chunk");
    *(void **)&g->quantize_init = dlsym(g->base, "ggml_quantize_init");
    *(void **)&g->cpu_init = dlsym(g->cpu, "ggml_cpu_init");
    if (!g->type_name || !g->type_size || !g->blck_size || !g->quantize_chunk ||
        !g->quantize_init || !g->cpu_init) {
        snprintf(why, why_len, "%s: a ggml entry point is missing", dir);
        ggml_ref_close(g);
        return false;
    }
    g->cpu_init();
    return true;
}

void ggml_ref_close(ggml_ref *g)
{
    /* The libraries stay mapped: ggml registers atexit work that must find its code. */
    g->base = g->cpu = NULL;
}

int ggml_ref_type_by_name(const ggml_ref *g, const char *name)
{
    for (int t = 0; t < GGML_TYPE_SCAN; t++) {
        const char *n = g->type_name(t);
        if (n && strcmp(n, name) == 0)
            return t;
    }
    return -1;
}

void *ggml_ref_sym(const ggml_ref *g, const char *name)
{
    void *p = dlsym(g->base, name);
    return p ? p : dlsym(g->cpu, name);
}
