/* ggml_peer.c - dlopen of ggml's prebuilt libraries (see ggml_peer.h).
 *
 * The best CPU variant is chosen the way ggml's own backend loader does it: every
 * libggml-cpu-*.so in the folder is loaded and asked for ggml_backend_score() (0: this host
 * lacks an instruction it needs), the highest wins, ties going to the first name in sorted
 * order so two runs on one host pick the same file. Loading a variant the host cannot run is
 * safe (ggml's loader relies on it too): nothing of it executes before the score says yes.
 */
#include "ggml_peer.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_err.h"
#include "qf_formats.h"

#define CPU_PREFIX "libggml-cpu-"
#define BASELINE_LIB CPU_PREFIX "x64.so"

const char *qf_ggml_default_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    dir = getenv("QF_GGML_DIR");
    if (dir && *dir)
        return dir;
#ifdef QF_GGML_DIR_DEFAULT
    return QF_GGML_DIR_DEFAULT;
#else
    return NULL;
#endif
}

/* dir/file, or NULL; why (when not NULL) says why not. */
static void *open_lib(const char *dir, const char *file, int mode, char *why, size_t why_len)
{
    char path[1200];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof path) {
        if (why)
            snprintf(why, why_len, "%s: path too long", dir);
        return NULL;
    }
    void *h = dlopen(path, mode);
    if (!h && why)
        snprintf(why, why_len, "cannot load %s: %s", path, dlerror());
    return h;
}

static int is_cpu_lib(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > strlen(CPU_PREFIX) + 3 && strncmp(e->d_name, CPU_PREFIX, strlen(CPU_PREFIX)) == 0
           && strcmp(e->d_name + n - 3, ".so") == 0;
}

/* Opens the highest-scoring CPU variant of dir into g->cpu; 0 or a qf_err with why filled. */
static int open_best_cpu(qf_ggml *g, char *why, size_t why_len)
{
    struct dirent **names = NULL;
    int n = scandir(g->dir, &names, is_cpu_lib, alphasort);
    if (n < 0) {
        snprintf(why, why_len, "cannot list %s", g->dir);
        return QF_EIO;
    }
    int best_score = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        void *h = len < sizeof g->cpu_lib ?
                  open_lib(g->dir, names[i]->d_name, RTLD_NOW | RTLD_LOCAL, NULL, 0) : NULL;
        int (*score)(void) = NULL;
        if (h)
            *(void **)&score = dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best_score) {
            if (g->cpu)
                dlclose(g->cpu);
            g->cpu = h;
            best_score = s;
            memcpy(g->cpu_lib, names[i]->d_name, len + 1);
        } else if (h) {
            dlclose(h);
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!g->cpu) {
        snprintf(why, why_len, "%s: none of its %d %s*.so libraries runs on this host",
                 g->dir, n, CPU_PREFIX);
        return QF_EUNSUP;
    }
    return 0;
}

int qf_ggml_open(qf_ggml *g, const char *dir, qf_ggml_cpu which, char *why, size_t why_len)
{
    memset(g, 0, sizeof *g);
    dir = qf_ggml_default_dir(dir);
    if (!dir) {
        snprintf(why, why_len, "no ggml folder: set QF_GGML_DIR or fetch it with "
                 "scripts/fetch-ggml.sh (make ggml)");
        return QF_ENOENT;
    }
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    char probe[1200];
    struct stat st;
    int n = snprintf(probe, sizeof probe, "%s/libggml-base.so", dir);
    if (n < 0 || (size_t)n >= sizeof probe || stat(probe, &st) != 0) {
        snprintf(why, why_len, "%s has no libggml-base.so: fetch ggml with "
                 "scripts/fetch-ggml.sh (make ggml) or point QF_GGML_DIR / --ggml-dir at it",
                 dir);
        return QF_ENOENT;
    }
    if (!(g->base = open_lib(dir, "libggml-base.so", RTLD_NOW | RTLD_GLOBAL, why, why_len)))
        return QF_EDLOPEN;
    int err = 0;
    if (which == QF_GGML_CPU_BEST) {
        err = open_best_cpu(g, why, why_len);
    } else {
        snprintf(g->cpu_lib, sizeof g->cpu_lib, "%s", BASELINE_LIB);
        if (!(g->cpu = open_lib(dir, BASELINE_LIB, RTLD_NOW | RTLD_GLOBAL, why, why_len)))
            err = QF_EDLOPEN;
    }
    if (err) {
        qf_ggml_close(g);
        return err;
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
        qf_ggml_close(g);
        return QF_EDLOPEN;
    }
    g->cpu_init();
    return 0;
}

void qf_ggml_close(qf_ggml *g)
{
    g->base = g->cpu = NULL;
}

/* ggml's type ids are GGUF's, a column of our format table; ggml's own table has no exported
 * length, and ggml_type_name reads past it for an id it does not have, so only ids we know are
 * asked, and the name ggml gives must match. */
int qf_ggml_type_by_name(const qf_ggml *g, const char *name)
{
    qf_format f;
    if (qf_format_from_name(name, &f) != 0)
        return -1;
    int t = qf_format_get(f)->gguf_type;
    if (t < 0)
        return -1;
    const char *n = g->type_name(t);
    return n && strcmp(n, name) == 0 ? t : -1;
}

void *qf_ggml_sym(const qf_ggml *g, const char *name)
{
    void *p = dlsym(g->base, name);
    return p ? p : dlsym(g->cpu, name);
}
