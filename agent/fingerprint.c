/* fingerprint.c - what this machine is, for the fleet: hwloc topology, ISA flags, GPUs and the
 * build identity, as one JSON object, plus the caps that job selectors match (qf_fingerprint.h).
 *
 * Everything here is best effort about the machine and exact about ourselves: a missing hwloc
 * attribute, an absent /proc/cpuinfo, a machine without packages or NUMA nodes, or a GPU
 * without a model name only leaves that key out; the only failures are running out of memory
 * or hwloc refusing to load any topology at all. Counts come from hwloc (packages, cores, PUs,
 * caches, NUMA nodes, memory); ISA flags come from the kernel's view (/proc/cpuinfo on x86
 * Linux, HWCAP on arm64 Linux, the compiler's CPUID probe elsewhere on x86), filtered to the
 * flags our kernels care about and named as selectors spell them ("isa=avx512_vnni").
 * GPUs are hwloc OS devices of type GPU or co-processor, which appear only when I/O discovery
 * is on, and GPU-class PCI devices no backend described (see gpus_json); "cuda"/"opencl" join
 * the backends when hwloc's CUDA or OpenCL backend reported a device.
 * Called once per agent process (hello) and by tests. Loading the topology with I/O devices
 * costs tens of milliseconds, so it happens once per process (see g_topo); the rest is cheap.
 */
#include "qf_fingerprint.h"

#include <assert.h>
#include <hwloc.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "qf_child.h"
#include "qf_err.h"
#include "qf_framework.h"
#include "qf_jobs.h"
#include "qf_kernels.h"
#include "qf_version.h"
#ifdef QF_HAVE_CUDA
#include "qf_cuda.h"
#endif
#ifdef QF_HAVE_OPENCL
#include "qf_opencl.h"
#endif

/* Bounds that keep a pathological machine's fingerprint under the wire's 64 KiB limit. */
#define MAX_NUMA_LISTED 256
#define MAX_GPUS_LISTED 64

/* Appends word to a space-separated list in buf (size bytes) unless it is already there or
 * does not fit; lists are short, so a linear scan is fine. */
static void word_add(char *buf, size_t size, const char *word)
{
    size_t wl = strlen(word), used = strlen(buf);
    for (const char *p = buf; (p = strstr(p, word)) != NULL; p += wl)
        if ((p == buf || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0'))
            return;
    if (used + (used ? 1 : 0) + wl + 1 > size)
        return;
    snprintf(buf + used, size - used, "%s%s", used ? " " : "", word);
}

/* Copies src into dst (size bytes), cut at size - 1: names longer than a caps field are
 * truncated rather than refused, since the fleet only needs them to be stable. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- ISA flags ---------------------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
/* cpuinfo flag -> our name. Linux spells AVX-VNNI "avx_vnni" and AMX as three flags; the
 * selector names follow the list in docs (avxvnni, amx). */
static const struct { const char *cpuinfo, *name; } k_x86_flags[] = {
    { "sse4_2", "sse4_2" },           { "avx", "avx" },
    { "avx2", "avx2" },               { "fma", "fma" },
    { "f16c", "f16c" },               { "avx512f", "avx512f" },
    { "avx512bw", "avx512bw" },       { "avx512vl", "avx512vl" },
    { "avx512_vnni", "avx512_vnni" }, { "avx512_bf16", "avx512_bf16" },
    { "avx_vnni", "avxvnni" },        { "amx_tile", "amx" },
};

/* The flags line of /proc/cpuinfo filtered to k_x86_flags; false if there is none. */
static bool isa_from_cpuinfo(char *isa, size_t size)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, f) > 0) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        found = true;
        /* Order of the table, not of cpuinfo, so two hosts with the same flags match exactly. */
        for (size_t i = 0; i < sizeof k_x86_flags / sizeof k_x86_flags[0]; i++) {
            const char *want = k_x86_flags[i].cpuinfo;
            size_t wl = strlen(want);
            for (const char *p = colon + 1; (p = strstr(p, want)) != NULL; p += wl) {
                if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':') &&
                    (p[wl] == ' ' || p[wl] == '\n' || p[wl] == '\0')) {
                    word_add(isa, size, k_x86_flags[i].name);
                    break;
                }
            }
        }
    }
    free(line);
    fclose(f);
    return found;
}

static void isa_collect(char *isa, size_t size)
{
    if (isa_from_cpuinfo(isa, size))
        return;
    /* No /proc (macOS, a sandbox): CPUID through the compiler, for the flags both gcc and
     * clang know; the compiler also checks the OS saves the AVX state. */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))   word_add(isa, size, "sse4_2");
    if (__builtin_cpu_supports("avx"))      word_add(isa, size, "avx");
    if (__builtin_cpu_supports("avx2"))     word_add(isa, size, "avx2");
    if (__builtin_cpu_supports("fma"))      word_add(isa, size, "fma");
    if (__builtin_cpu_supports("avx512f"))  word_add(isa, size, "avx512f");
    if (__builtin_cpu_supports("avx512bw")) word_add(isa, size, "avx512bw");
    if (__builtin_cpu_supports("avx512vl")) word_add(isa, size, "avx512vl");
}
#elif defined(__aarch64__) && defined(__linux__)
static void isa_collect(char *isa, size_t size)
{
    unsigned long hw = getauxval(AT_HWCAP);
    if (hw & HWCAP_ASIMD)   word_add(isa, size, "asimd");
#ifdef HWCAP_ASIMDDP
    if (hw & HWCAP_ASIMDDP) word_add(isa, size, "asimddp");
#endif
#ifdef HWCAP_SVE
    if (hw & HWCAP_SVE)     word_add(isa, size, "sve");
#endif
#ifdef HWCAP2_I8MM
    if (getauxval(AT_HWCAP2) & HWCAP2_I8MM) word_add(isa, size, "i8mm");
#endif
}
#elif defined(__aarch64__)
static void isa_collect(char *isa, size_t size)
{
    word_add(isa, size, "asimd");   /* Advanced SIMD is mandatory in AArch64 */
}
#else
static void isa_collect(char *isa, size_t size)
{
    (void)isa;
    (void)size;
}
#endif

/* ---- hwloc -------------------------------------------------------------------------------- */

/* The first object of type that carries info attribute name, or NULL. */
static const char *first_info(hwloc_topology_t topo, hwloc_obj_type_t type, const char *name)
{
    hwloc_obj_t o = NULL;
    while ((o = hwloc_get_next_obj_by_type(topo, type, o)) != NULL) {
        const char *v = hwloc_obj_get_info_by_name(o, name);
        if (v && v[0])
            return v;
    }
    return NULL;
}

/* Sets key to value; a missing value, or one that is not UTF-8 (a firmware string, a host
 * name), leaves the key out rather than failing the whole fingerprint. */
static int set_str(json_t *obj, const char *key, const char *value)
{
    json_t *s = value ? json_string(value) : NULL;
    return s ? json_object_set_new(obj, key, s) : 0;
}

static int set_int(json_t *obj, const char *key, json_int_t value)
{
    return json_object_set_new(obj, key, json_integer(value));
}

static json_t *cpu_json(hwloc_topology_t topo)
{
    json_t *cpu = json_object();
    if (!cpu)
        return NULL;
    hwloc_obj_t root = hwloc_get_root_obj(topo);
    /* x86 Linux puts CPUModel on packages; some platforms only on the root object. */
    const char *model = first_info(topo, HWLOC_OBJ_PACKAGE, "CPUModel");
    if (!model)
        model = hwloc_obj_get_info_by_name(root, "CPUModel");
    const char *vendor = first_info(topo, HWLOC_OBJ_PACKAGE, "CPUVendor");
    if (!vendor)
        vendor = hwloc_obj_get_info_by_name(root, "CPUVendor");
    /* CPUID pads the brand string with spaces; a stored fingerprint should not carry them. */
    char model_buf[128] = "";
    if (model) {
        copy_cut(model_buf, sizeof model_buf, model + strspn(model, " "));
        size_t n = strlen(model_buf);
        while (n > 0 && model_buf[n - 1] == ' ')
            model_buf[--n] = '\0';
        model = model_buf;
    }
    int bad = set_str(cpu, "model", model);
    bad |= set_str(cpu, "vendor", vendor);
    bad |= set_int(cpu, "packages", hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE));
    bad |= set_int(cpu, "cores", hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE));
    bad |= set_int(cpu, "pus", hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU));
    if (bad) {
        json_decref(cpu);
        return NULL;
    }
    return cpu;
}

/* {"l1d": {"size": bytes of one, "count": n}, "l2": ..., "l3": ...}, levels hwloc saw. */
static json_t *caches_json(hwloc_topology_t topo)
{
    static const struct { const char *key; hwloc_obj_type_t type; } levels[] = {
        { "l1d", HWLOC_OBJ_L1CACHE }, { "l2", HWLOC_OBJ_L2CACHE }, { "l3", HWLOC_OBJ_L3CACHE },
    };
    json_t *caches = json_object();
    if (!caches)
        return NULL;
    int bad = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        int n = hwloc_get_nbobjs_by_type(topo, levels[i].type);
        hwloc_obj_t first = hwloc_get_obj_by_type(topo, levels[i].type, 0);
        if (n <= 0 || !first || !first->attr)
            continue;
        json_t *c = json_object();
        if (!c) {
            bad = 1;
            break;
        }
        bad |= set_int(c, "size", (json_int_t)first->attr->cache.size);
        bad |= set_int(c, "count", n);
        if (first->attr->cache.linesize)
            bad |= set_int(c, "line", (json_int_t)first->attr->cache.linesize);
        bad |= json_object_set_new(caches, levels[i].key, c);
    }
    if (bad) {
        json_decref(caches);
        return NULL;
    }
    return caches;
}

/* [{"os_index": i, "memory": bytes}, ...] */
static json_t *numa_json(hwloc_topology_t topo)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    hwloc_obj_t o = NULL;
    int bad = 0, n = 0;
    while (!bad && n < MAX_NUMA_LISTED &&
           (o = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, o)) != NULL) {
        json_t *node = json_object();
        if (!node) {
            bad = 1;
            break;
        }
        bad |= set_int(node, "os_index", (json_int_t)o->os_index);
        if (o->attr)
            bad |= set_int(node, "memory", (json_int_t)o->attr->numanode.local_memory);
        bad |= json_array_append_new(arr, node);
        n++;
    }
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Info attributes worth keeping on a GPU: who reported it and what it is. */
static bool gpu_info_wanted(const char *name)
{
    return strcmp(name, "Backend") == 0 || strncmp(name, "GPU", 3) == 0 ||
           strncmp(name, "CUDA", 4) == 0 || strncmp(name, "OpenCL", 6) == 0 ||
           strncmp(name, "LevelZero", 9) == 0 || strncmp(name, "NVIDIA", 6) == 0 ||
           strncmp(name, "AMD", 3) == 0;
}

static bool is_gpu_osdev(hwloc_obj_t o)
{
    return o->type == HWLOC_OBJ_OS_DEVICE && o->attr &&
           (o->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU ||
            o->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC);
}

/* PCI display controllers (class 0x03xx: VGA, 3D) and processing accelerators (0x12xx). */
static bool is_gpu_pcidev(hwloc_obj_t o)
{
    unsigned cls = o->attr ? o->attr->pcidev.class_id >> 8 : 0;
    return cls == 0x03 || cls == 0x12;
}

/* The PCI identity of a device: always the numeric ids, the names when pci.ids is there. */
static int pci_fields(json_t *g, hwloc_obj_t pci)
{
    const struct hwloc_pcidev_attr_s *a = &pci->attr->pcidev;
    char busid[32], vendor[8], device[8], cls[8];
    snprintf(busid, sizeof busid, "%04x:%02x:%02x.%01x", (unsigned)a->domain, a->bus, a->dev,
             a->func);
    snprintf(vendor, sizeof vendor, "%04x", a->vendor_id);
    snprintf(device, sizeof device, "%04x", a->device_id);
    snprintf(cls, sizeof cls, "%04x", a->class_id);
    int bad = set_str(g, "pci_busid", busid);
    bad |= set_str(g, "pci_vendor_id", vendor);
    bad |= set_str(g, "pci_device_id", device);
    bad |= set_str(g, "pci_class", cls);
    bad |= set_str(g, "pci_vendor", hwloc_obj_get_info_by_name(pci, "PCIVendor"));
    bad |= set_str(g, "pci_device", hwloc_obj_get_info_by_name(pci, "PCIDevice"));
    return bad;
}

/* One entry per GPU or co-processor OS device (what a vendor backend such as CUDA, OpenCL or
 * Level Zero reported, or a DRM card), then one per GPU-class PCI device that has none: a GPU
 * whose driver exposes no DRM node and whose backend plugin is not installed (Debian builds
 * hwloc without CUDA/NVML) is still seen, by its PCI ids. "cuda"/"opencl" join the backends
 * only when hwloc's CUDA or OpenCL backend reported a device, i.e. a runtime answered. */
static json_t *gpus_json(hwloc_topology_t topo, char *backends, size_t bsize)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    hwloc_obj_t o = NULL;
    int bad = 0;
    while (!bad && json_array_size(arr) < MAX_GPUS_LISTED &&
           (o = hwloc_get_next_osdev(topo, o)) != NULL) {
        if (!is_gpu_osdev(o))
            continue;
        json_t *g = json_object();
        if (!g) {
            bad = 1;
            break;
        }
        bad |= set_str(g, "name", o->name);
        bad |= set_str(g, "type", o->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU ? "gpu" : "coproc");
        bad |= set_str(g, "subtype", o->subtype);
        for (unsigned i = 0; i < o->infos_count; i++) {
            const struct hwloc_info_s *inf = &o->infos[i];
            if (inf->name && inf->value && gpu_info_wanted(inf->name))
                bad |= set_str(g, inf->name, inf->value);
        }
        if (o->parent && o->parent->type == HWLOC_OBJ_PCI_DEVICE && o->parent->attr)
            bad |= pci_fields(g, o->parent);
        const char *backend = hwloc_obj_get_info_by_name(o, "Backend");
        const char *kind = backend ? backend : o->subtype;
        if (kind && strcmp(kind, "CUDA") == 0)
            word_add(backends, bsize, "cuda");
        if (kind && strcmp(kind, "OpenCL") == 0)
            word_add(backends, bsize, "opencl");
        bad |= json_array_append_new(arr, g);
    }
    o = NULL;
    while (!bad && json_array_size(arr) < MAX_GPUS_LISTED &&
           (o = hwloc_get_next_pcidev(topo, o)) != NULL) {
        if (!is_gpu_pcidev(o))
            continue;
        bool listed = false;
        for (hwloc_obj_t c = o->io_first_child; c && !listed; c = c->next_sibling)
            listed = is_gpu_osdev(c);
        if (listed)
            continue;
        json_t *g = json_object();
        if (!g) {
            bad = 1;
            break;
        }
        bad |= set_str(g, "type", "pci");
        bad |= pci_fields(g, o);
        bad |= json_array_append_new(arr, g);
    }
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* A topology with I/O devices; without them if the I/O discovery fails. NULL: none at all. */
static hwloc_topology_t topology_load(void)
{
    for (int with_io = 1; with_io >= 0; with_io--) {
        hwloc_topology_t topo;
        if (hwloc_topology_init(&topo) != 0)
            return NULL;
        if (with_io)
            hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        /* hwloc's OpenCL plugin would load the OpenCL platforms into the agent's process, and
         * PoCL's (not only it) does not survive fork: every forked OpenCL job would hang.
         * OpenCL devices come from qf_opencl_probe instead (opencl_json). */
        hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "opencl");
        if (hwloc_topology_load(topo) == 0)
            return topo;
        hwloc_topology_destroy(topo);
    }
    return NULL;
}

/* The topology is loaded once per process and kept: the machine does not change under a
 * running agent, and destroying the last topology makes hwloc dlclose its PCI plugin, whose
 * libpciaccess leaves its allocations behind at every load (LeakSanitizer reports them). A
 * loaded topology is only read afterwards, which hwloc allows from several threads. */
static hwloc_topology_t g_topo;
static pthread_once_t g_topo_once = PTHREAD_ONCE_INIT;

static void topology_load_once(void)
{
    g_topo = topology_load();
}

/* ---- the whole fingerprint ---------------------------------------------------------------- */

static json_t *words_json(const char *words)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", words);
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (json_array_append_new(arr, json_string(w)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

#ifdef QF_HAVE_CUDA
/* What the CUDA probe child sends back. */
typedef struct cuda_answer {
    int32_t             count;
    qf_cuda_device_info info;      /* device 0's, when count > 0 */
} cuda_answer;

static int cuda_ask(void *arg, void *buf, size_t size)
{
    (void)arg;
    cuda_answer *a = buf;
    assert(size >= sizeof *a);
    (void)size;
    memset(a, 0, sizeof *a);
    int count = 0;
    if (qf_cuda_device_count(&count) == 0 && count > 0 && qf_cuda_device_query(&a->info) == 0)
        a->count = count;
    return (int)sizeof *a;
}
#endif

/* The CUDA devices this build's backend sees (it runs on device 0): name, compute capability,
 * SMs, memory, driver and runtime versions; "cuda" joins the backends when there is one.
 * Asked in a child process (qf_child.h): initializing the driver here would break the CUDA jobs
 * this agent forks later. Debian's hwloc has no CUDA plugin, so this is the only source. An
 * empty array without a driver or device, or in a build without CUDA: the fingerprint has the
 * same keys everywhere. */
static json_t *cuda_json(char *backends, size_t bsize)
{
    json_t *arr = json_array();
#ifdef QF_HAVE_CUDA
    cuda_answer a;
    size_t got = 0;
    if (arr && qf_child_call(cuda_ask, NULL, &a, sizeof a, 10000, &got) == 0 &&
        got == sizeof a && a.count > 0) {
        const qf_cuda_device_info *info = &a.info;
        json_t *d = json_object();
        char cc[16];
        snprintf(cc, sizeof cc, "%d.%d", info->cc_major, info->cc_minor);
        int bad = !d;
        bad |= set_str(d, "name", info->name);
        bad |= set_str(d, "compute_capability", cc);
        bad |= set_int(d, "sm_count", info->sm_count);
        bad |= set_int(d, "memory", (json_int_t)info->total_mem);
        bad |= set_int(d, "l2_bytes", (json_int_t)info->l2_bytes);
        bad |= set_int(d, "driver_version", info->driver_version);
        bad |= set_int(d, "runtime_version", info->runtime_version);
        bad |= set_int(d, "devices", a.count);
        if (bad || json_array_append_new(arr, d) != 0) {
            json_decref(arr);
            return NULL;
        }
        word_add(backends, bsize, "cuda");
    }
#else
    (void)backends, (void)bsize;
#endif
    return arr;
}

/* What the frameworks probe child sends back: each adapter's presence and version. */
typedef struct fw_answer {
    int32_t present[8];
    char    version[8][QF_FRAMEWORK_VERSION_MAX];
} fw_answer;

static int fw_ask(void *arg, void *buf, size_t size)
{
    (void)arg;
    fw_answer *a = buf;
    assert(size >= sizeof *a);
    (void)size;
    memset(a, 0, sizeof *a);
    int n = 0;
    const qf_framework *const *tab = qf_framework_table(&n);
    for (int i = 0; i < n && i < 8; i++)
        a->present[i] = tab[i]->probe(a->version[i], sizeof a->version[i]);
    return (int)sizeof *a;
}

/* The frameworks whose adapters find them here (agent/qf_framework.h), each {name, title,
 * version}; each present one's name joins the backends, so a framework job's backend=NAME
 * selector finds this agent. Probed in a child process: loading a framework's library (ONNX
 * Runtime starts threads, ggml registers exit work) must not happen in the process that forks
 * the jobs. An empty array when none is present or the probe fails. */
static json_t *frameworks_json(char *backends, size_t bsize)
{
    json_t *arr = json_array();
    fw_answer a;
    size_t got = 0;
    if (!arr || qf_child_call(fw_ask, NULL, &a, sizeof a, 20000, &got) != 0 || got != sizeof a)
        return arr;
    int n = 0;
    const qf_framework *const *tab = qf_framework_table(&n);
    for (int i = 0; i < n && i < 8; i++) {
        if (!a.present[i])
            continue;
        a.version[i][sizeof a.version[i] - 1] = '\0';
        json_t *d = json_object();
        int bad = !d;
        bad |= set_str(d, "name", tab[i]->name);
        bad |= set_str(d, "title", tab[i]->title);
        bad |= set_str(d, "version", a.version[i]);
        if (bad || json_array_append_new(arr, d) != 0) {
            json_decref(arr);
            return NULL;
        }
        word_add(backends, bsize, tab[i]->name);
    }
    return arr;
}

static json_t *build_json(hwloc_topology_t topo, const qf_agent_caps *caps, const char *host,
                          const struct utsname *u, const char *isa_list, json_t *gpus)
{
    json_t *j = json_object(), *q = json_object(), *kernels = json_array(),
           *kinds = json_array();
    int bad = !j || !q || !kernels || !kinds;
    if (!bad) {
        char os[sizeof u->sysname + sizeof u->release + 2];
        snprintf(os, sizeof os, "%s %s", u->sysname, u->release);
        hwloc_obj_t root = hwloc_get_root_obj(topo);
        unsigned api = hwloc_get_api_version();
        char hwloc_ver[32];
        snprintf(hwloc_ver, sizeof hwloc_ver, "%u.%u.%u", api >> 16, (api >> 8) & 0xff,
                 api & 0xff);

        bad |= set_str(j, "name", caps->name);
        bad |= set_str(j, "hostname", host);
        bad |= set_str(j, "arch", caps->arch);
        bad |= set_str(j, "os", os);
        bad |= json_object_set_new(j, "cpu", cpu_json(topo));
        bad |= json_object_set_new(j, "caches", caches_json(topo));
        bad |= json_object_set_new(j, "numa", numa_json(topo));
        bad |= set_int(j, "memory", (json_int_t)root->total_memory);
        bad |= json_object_set_new(j, "isa", words_json(isa_list));
        bad |= json_object_set(j, "gpus", gpus);
        bad |= json_object_set_new(j, "backends", words_json(caps->backends));

        bad |= set_str(q, "version", QF_VERSION);
        bad |= set_str(q, "commit", QF_GIT_COMMIT);
        bad |= json_object_set_new(q, "dirty", json_boolean(QF_GIT_DIRTY));
        bad |= set_str(q, "compiler", QF_C_COMPILER);
        bad |= set_str(q, "build_type", QF_BUILD_TYPE);
        bad |= set_str(q, "hwloc_api", hwloc_ver);
        /* the kernel sets this agent can run: the reference and every ISA the host supports;
         * "best" is what runs a job unless its selector says otherwise */
        for (int i = 0; i < QF_ISA_COUNT; i++)
            if (qf_isa_host_supports((qf_isa)i))
                bad |= json_array_append_new(kernels, json_string(qf_isa_name((qf_isa)i)));
        bad |= set_str(q, "kernels_best", qf_isa_name(qf_isa_best()));
        bad |= set_str(q, "cpu_features", qf_isa_host_features());
        int nk = 0;
        const qf_job_kind *tab = qf_jobs_table(&nk);
        for (int i = 0; i < nk; i++)
            bad |= json_array_append_new(kinds, json_string(tab[i].name));
        bad |= json_object_set_new(q, "kernels", kernels);
        bad |= json_object_set_new(q, "job_kinds", kinds);
        kernels = kinds = NULL;   /* set_new took them, even when it failed */
        bad |= json_object_set_new(j, "qfleet", q);
        q = NULL;
    }
    json_decref(q);
    json_decref(kernels);
    json_decref(kinds);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The OpenCL devices this build's backend sees, each with its platform, type, memory, compute
 * units and driver, listed by qf_opencl_probe in a child process so that this process (which
 * forks the jobs) never loads a platform; "opencl" joins the backends when there is one. An
 * empty array without a platform, or in a build without OpenCL. */
static json_t *opencl_json(char *backends, size_t bsize)
{
    json_t *arr = json_array();
#ifdef QF_HAVE_OPENCL
    qf_opencl_device_info devs[16];
    int n = 0;
    if (arr && qf_opencl_probe(devs, 16, &n) == 0) {
        for (int i = 0; i < n; i++) {
            json_t *d = json_object();
            int bad = !d;
            bad |= set_str(d, "platform", devs[i].platform);
            bad |= set_str(d, "name", devs[i].name);
            bad |= set_str(d, "vendor", devs[i].vendor);
            bad |= set_str(d, "type", devs[i].type);
            bad |= set_str(d, "version", devs[i].version);
            bad |= set_str(d, "driver_version", devs[i].driver_version);
            bad |= set_int(d, "memory", (json_int_t)devs[i].global_mem);
            bad |= set_int(d, "compute_units", (json_int_t)devs[i].compute_units);
            bad |= set_int(d, "clock_mhz", (json_int_t)devs[i].clock_mhz);
            if (bad || json_array_append_new(arr, d) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        if (n > 0)
            word_add(backends, bsize, "opencl");
    }
#else
    (void)backends, (void)bsize;
#endif
    return arr;
}

int qf_fingerprint_collect(const char *name, qf_agent_caps *caps, char **json)
{
    assert(caps && json);
    *json = NULL;
    memset(caps, 0, sizeof *caps);

    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';

    copy_cut(caps->name, sizeof caps->name, name && name[0] ? name : host);
    copy_cut(caps->arch, sizeof caps->arch, u.machine);
    isa_collect(caps->isa, sizeof caps->isa);
    snprintf(caps->backends, sizeof caps->backends, "cpu");

    pthread_once(&g_topo_once, topology_load_once);
    hwloc_topology_t topo = g_topo;
    if (!topo)
        return qf_errorf(QF_EUNSUP, "fingerprint: hwloc cannot load this machine's topology");
    json_t *gpus = gpus_json(topo, caps->backends, sizeof caps->backends);
    json_t *cuda = cuda_json(caps->backends, sizeof caps->backends);
    json_t *opencl = opencl_json(caps->backends, sizeof caps->backends);
    json_t *fws = frameworks_json(caps->backends, sizeof caps->backends);
    json_t *j = gpus ? build_json(topo, caps, host, &u, caps->isa, gpus) : NULL;
    json_decref(gpus);
    /* json_object_set_new takes its value even when it fails, so each is released once */
    if (j && (json_object_set_new(j, "cuda", cuda) | json_object_set_new(j, "opencl", opencl) |
              json_object_set_new(j, "frameworks", fws))) {
        json_decref(j);
        j = NULL;
    } else if (!j) {
        json_decref(cuda);
        json_decref(opencl);
        json_decref(fws);
    }
    if (!j)
        return QF_ENOMEM;
    *json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *json ? 0 : QF_ENOMEM;
}
