/* fw_ort.c - the ONNX Runtime adapter (Microsoft Olive's INT4 block-wise scheme): our weights,
 * quantized to the ort_int4_b* layouts, run as ORT's own com.microsoft.MatMulNBits, and the
 * unquantized baseline as a float MatMul, both timed inside ONNX Runtime.
 *
 * The library (libonnxruntime.so.1 from the npm package onnxruntime-node, scripts/fetch-ort.sh)
 * is dlopen'd from $QF_ORT_DIR, else the folder the build was configured with, and driven
 * through its ABI-stable C API: OrtGetApiBase() -> OrtApiBase -> GetApi(ORT_API_VERSION) -> a
 * struct of function pointers whose order ORT never changes (new members are only appended).
 * We declare that struct ourselves below, member for member up to the last one we call, in the
 * order of onnxruntime_c_api.h (OrtApi); ORT's header is not part of this repository. A
 * miscounted slot would call the wrong function, so loading ends with a self-check through
 * cheap calls whose answers are known (a status's code and message, the CPU memory info's name
 * and id), and run() checks the session's input/output counts and the output's shape.
 *
 * The model is built in memory (agent/onnx_subset.proto, protobuf-c): one input A [1, K] f32,
 * one node, one output Y [1, N], with the weights as initializers:
 *   ort_int4_b*: MatMulNBits (domain com.microsoft, K, N, bits 4, block_size) over B, scales
 *                [and zero_points], copied out of our rows as kernels/include/qf_blocks.h maps
 *                them (the bytes are the same; only their grouping into tensors differs);
 *   f32:         MatMul with W^T [K, N] (ONNX MatMul's B is K x N; our rows are output features).
 * accuracy_level is left unset (0): ORT computes in f32 from the 4-bit weights, as Olive's
 * default export does, so the output must match our dequantize-then-multiply reference to
 * float rounding; a layout error shows up as noise in the metrics, not as speed.
 *
 * Called in the runner's child process, one job per process (agent/jobs.c, run_framework), and
 * by tests/test_fw_ort.c in-process. The library stays loaded and its OrtEnv alive for the
 * process's life: ORT is not meant to be unloaded, and an env per job would gain nothing.
 * ORT's log goes to a sink that drops it: every failure comes back as a FAILED result carrying
 * ORT's own message.
 */
#include "qf_framework.h"

#include <assert.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_subset.pb-c.h"
#include "qf_blocks.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_time.h"
#include "fw_tool.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fw_ort.c copies little-endian block bytes into ONNX tensors as they are"
#endif

#define ORT_LIB "libonnxruntime.so.1"

/* ---- ONNX Runtime's C API: the part we call ------------------------------------------------
 * The API version we ask GetApi for, and the oldest library we accept: ORT 1.N serves API
 * versions up to N, and every member we declare existed long before 1.20. */
#define ORT_API_VERSION_USED 20
#define ORT_MIN_MAJOR 1
#define ORT_MIN_MINOR 20

typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;   /* NULL means success */
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;

/* The enum values we pass, as onnxruntime_c_api.h numbers them (enums are int-sized). */
enum {
    ORT_INVALID_ARGUMENT = 2,                   /* OrtErrorCode */
    ORT_LOGGING_LEVEL_ERROR = 3,                /* OrtLoggingLevel */
    ORT_SEQUENTIAL = 0,                         /* ExecutionMode */
    ORT_ARENA_ALLOCATOR = 1,                    /* OrtAllocatorType: OrtArenaAllocator */
    ORT_MEM_TYPE_DEFAULT = 0,                   /* OrtMemType: OrtMemTypeDefault */
    ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1,    /* ONNXTensorElementDataType */
};

typedef void (*ort_logging_fn)(void *param, int severity, const char *category,
                               const char *logid, const char *code_location, const char *message);
typedef void (*ort_unused_fn)(void);   /* a slot we never call: only its place counts */

/* OrtApi, members 0..100 in the header's order; the number is each member's index. */
typedef struct ort_api {
    OrtStatus *(*CreateStatus)(int code, const char *msg);                              /* 0 */
    int (*GetErrorCode)(const OrtStatus *status);                                       /* 1 */
    const char *(*GetErrorMessage)(const OrtStatus *status);                            /* 2 */
    ort_unused_fn CreateEnv;                                                            /* 3 */
    OrtStatus *(*CreateEnvWithCustomLogger)(ort_logging_fn fn, void *param, int level,
                                            const char *logid, OrtEnv **out);           /* 4 */
    ort_unused_fn EnableTelemetryEvents;                                                /* 5 */
    ort_unused_fn DisableTelemetryEvents;                                               /* 6 */
    ort_unused_fn CreateSession;                                                        /* 7 */
    OrtStatus *(*CreateSessionFromArray)(const OrtEnv *env, const void *model_data,
                                         size_t model_data_length,
                                         const OrtSessionOptions *options,
                                         OrtSession **out);                             /* 8 */
    OrtStatus *(*Run)(OrtSession *session, const OrtRunOptions *run_options,
                      const char *const *input_names, const OrtValue *const *inputs,
                      size_t input_len, const char *const *output_names,
                      size_t output_names_len, OrtValue **outputs);                     /* 9 */
    OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **options);                    /* 10 */
    ort_unused_fn SetOptimizedModelFilePath;                                            /* 11 */
    ort_unused_fn CloneSessionOptions;                                                  /* 12 */
    OrtStatus *(*SetSessionExecutionMode)(OrtSessionOptions *options, int mode);        /* 13 */
    ort_unused_fn EnableProfiling;                                                      /* 14 */
    ort_unused_fn DisableProfiling;                                                     /* 15 */
    ort_unused_fn EnableMemPattern;                                                     /* 16 */
    ort_unused_fn DisableMemPattern;                                                    /* 17 */
    ort_unused_fn EnableCpuMemArena;                                                    /* 18 */
    ort_unused_fn DisableCpuMemArena;                                                   /* 19 */
    ort_unused_fn SetSessionLogId;                                                      /* 20 */
    ort_unused_fn SetSessionLogVerbosityLevel;                                          /* 21 */
    ort_unused_fn SetSessionLogSeverityLevel;                                           /* 22 */
    ort_unused_fn SetSessionGraphOptimizationLevel;                                     /* 23 */
    OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *options, int n);              /* 24 */
    OrtStatus *(*SetInterOpNumThreads)(OrtSessionOptions *options, int n);              /* 25 */
    ort_unused_fn CreateCustomOpDomain;                                                 /* 26 */
    ort_unused_fn CustomOpDomain_Add;                                                   /* 27 */
    ort_unused_fn AddCustomOpDomain;                                                    /* 28 */
    ort_unused_fn RegisterCustomOpsLibrary;                                             /* 29 */
    OrtStatus *(*SessionGetInputCount)(const OrtSession *session, size_t *out);         /* 30 */
    OrtStatus *(*SessionGetOutputCount)(const OrtSession *session, size_t *out);        /* 31 */
    ort_unused_fn SessionGetOverridableInitializerCount;                                /* 32 */
    ort_unused_fn SessionGetInputTypeInfo;                                              /* 33 */
    ort_unused_fn SessionGetOutputTypeInfo;                                             /* 34 */
    ort_unused_fn SessionGetOverridableInitializerTypeInfo;                             /* 35 */
    ort_unused_fn SessionGetInputName;                                                  /* 36 */
    ort_unused_fn SessionGetOutputName;                                                 /* 37 */
    ort_unused_fn SessionGetOverridableInitializerName;                                 /* 38 */
    ort_unused_fn CreateRunOptions;                                                     /* 39 */
    ort_unused_fn RunOptionsSetRunLogVerbosityLevel;                                    /* 40 */
    ort_unused_fn RunOptionsSetRunLogSeverityLevel;                                     /* 41 */
    ort_unused_fn RunOptionsSetRunTag;                                                  /* 42 */
    ort_unused_fn RunOptionsGetRunLogVerbosityLevel;                                    /* 43 */
    ort_unused_fn RunOptionsGetRunLogSeverityLevel;                                     /* 44 */
    ort_unused_fn RunOptionsGetRunTag;                                                  /* 45 */
    ort_unused_fn RunOptionsSetTerminate;                                               /* 46 */
    ort_unused_fn RunOptionsUnsetTerminate;                                             /* 47 */
    ort_unused_fn CreateTensorAsOrtValue;                                               /* 48 */
    OrtStatus *(*CreateTensorWithDataAsOrtValue)(const OrtMemoryInfo *info, void *p_data,
                                                 size_t p_data_len, const int64_t *shape,
                                                 size_t shape_len, int type,
                                                 OrtValue **out);                       /* 49 */
    ort_unused_fn IsTensor;                                                             /* 50 */
    OrtStatus *(*GetTensorMutableData)(OrtValue *value, void **out);                    /* 51 */
    ort_unused_fn FillStringTensor;                                                     /* 52 */
    ort_unused_fn GetStringTensorDataLength;                                            /* 53 */
    ort_unused_fn GetStringTensorContent;                                               /* 54 */
    ort_unused_fn CastTypeInfoToTensorInfo;                                             /* 55 */
    ort_unused_fn GetOnnxTypeFromTypeInfo;                                              /* 56 */
    ort_unused_fn CreateTensorTypeAndShapeInfo;                                         /* 57 */
    ort_unused_fn SetTensorElementType;                                                 /* 58 */
    ort_unused_fn SetDimensions;                                                        /* 59 */
    ort_unused_fn GetTensorElementType;                                                 /* 60 */
    OrtStatus *(*GetDimensionsCount)(const OrtTensorTypeAndShapeInfo *info,
                                     size_t *out);                                      /* 61 */
    OrtStatus *(*GetDimensions)(const OrtTensorTypeAndShapeInfo *info, int64_t *dims,
                                size_t dims_len);                                       /* 62 */
    ort_unused_fn GetSymbolicDimensions;                                                /* 63 */
    ort_unused_fn GetTensorShapeElementCount;                                           /* 64 */
    OrtStatus *(*GetTensorTypeAndShape)(const OrtValue *value,
                                        OrtTensorTypeAndShapeInfo **out);               /* 65 */
    ort_unused_fn GetTypeInfo;                                                          /* 66 */
    ort_unused_fn GetValueType;                                                         /* 67 */
    ort_unused_fn CreateMemoryInfo;                                                     /* 68 */
    OrtStatus *(*CreateCpuMemoryInfo)(int type, int mem_type, OrtMemoryInfo **out);     /* 69 */
    ort_unused_fn CompareMemoryInfo;                                                    /* 70 */
    OrtStatus *(*MemoryInfoGetName)(const OrtMemoryInfo *info, const char **out);       /* 71 */
    OrtStatus *(*MemoryInfoGetId)(const OrtMemoryInfo *info, int *out);                 /* 72 */
    ort_unused_fn MemoryInfoGetMemType;                                                 /* 73 */
    ort_unused_fn MemoryInfoGetType;                                                    /* 74 */
    ort_unused_fn AllocatorAlloc;                                                       /* 75 */
    ort_unused_fn AllocatorFree;                                                        /* 76 */
    ort_unused_fn AllocatorGetInfo;                                                     /* 77 */
    ort_unused_fn GetAllocatorWithDefaultOptions;                                       /* 78 */
    ort_unused_fn AddFreeDimensionOverride;                                             /* 79 */
    ort_unused_fn GetValue;                                                             /* 80 */
    ort_unused_fn GetValueCount;                                                        /* 81 */
    ort_unused_fn CreateValue;                                                          /* 82 */
    ort_unused_fn CreateOpaqueValue;                                                    /* 83 */
    ort_unused_fn GetOpaqueValue;                                                       /* 84 */
    ort_unused_fn KernelInfoGetAttribute_float;                                         /* 85 */
    ort_unused_fn KernelInfoGetAttribute_int64;                                         /* 86 */
    ort_unused_fn KernelInfoGetAttribute_string;                                        /* 87 */
    ort_unused_fn KernelContext_GetInputCount;                                          /* 88 */
    ort_unused_fn KernelContext_GetOutputCount;                                         /* 89 */
    ort_unused_fn KernelContext_GetInput;                                               /* 90 */
    ort_unused_fn KernelContext_GetOutput;                                              /* 91 */
    void (*ReleaseEnv)(OrtEnv *p);                                                      /* 92 */
    void (*ReleaseStatus)(OrtStatus *p);                                                /* 93 */
    void (*ReleaseMemoryInfo)(OrtMemoryInfo *p);                                        /* 94 */
    void (*ReleaseSession)(OrtSession *p);                                              /* 95 */
    void (*ReleaseValue)(OrtValue *p);                                                  /* 96 */
    ort_unused_fn ReleaseRunOptions;                                                    /* 97 */
    ort_unused_fn ReleaseTypeInfo;                                                      /* 98 */
    void (*ReleaseTensorTypeAndShapeInfo)(OrtTensorTypeAndShapeInfo *p);                /* 99 */
    void (*ReleaseSessionOptions)(OrtSessionOptions *p);                                /* 100 */
} ort_api;

/* Each member we call sits at the index its comment gives (all members are pointer-sized). */
#define AT(member, index) \
    _Static_assert(offsetof(ort_api, member) == (index) * sizeof(void (*)(void)), #member)
AT(CreateStatus, 0); AT(GetErrorCode, 1); AT(GetErrorMessage, 2);
AT(CreateEnvWithCustomLogger, 4); AT(CreateSessionFromArray, 8); AT(Run, 9);
AT(CreateSessionOptions, 10); AT(SetSessionExecutionMode, 13); AT(SetIntraOpNumThreads, 24);
AT(SetInterOpNumThreads, 25); AT(SessionGetInputCount, 30); AT(SessionGetOutputCount, 31);
AT(CreateTensorWithDataAsOrtValue, 49); AT(GetTensorMutableData, 51);
AT(GetDimensionsCount, 61); AT(GetDimensions, 62); AT(GetTensorTypeAndShape, 65);
AT(CreateCpuMemoryInfo, 69); AT(MemoryInfoGetName, 71); AT(MemoryInfoGetId, 72);
AT(ReleaseEnv, 92); AT(ReleaseStatus, 93); AT(ReleaseMemoryInfo, 94); AT(ReleaseSession, 95);
AT(ReleaseValue, 96); AT(ReleaseTensorTypeAndShapeInfo, 99); AT(ReleaseSessionOptions, 100);
_Static_assert(sizeof(ort_api) == 101 * sizeof(void (*)(void)), "OrtApi members 0..100");
#undef AT

typedef struct ort_api_base {
    const ort_api *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} ort_api_base;

/* ---- loading (once per process) ------------------------------------------------------------ */

static struct {
    pthread_once_t once;
    void *lib;
    const ort_api *api;                         /* NULL: not usable, why says why */
    char version[QF_FRAMEWORK_VERSION_MAX];
    char why[QF_JOB_ERROR_MAX - 32];
    pthread_mutex_t env_lock;
    OrtEnv *env;                                /* created by the first run() */
} g_ort = { .once = PTHREAD_ONCE_INIT, .env_lock = PTHREAD_MUTEX_INITIALIZER };

/* The answers to calls whose results are known, to catch a miscounted OrtApi: a status made
 * with a code and message gives them back; the CPU memory info is named "Cpu", id 0. */
static int self_check(const ort_api *api, char *why, size_t why_len)
{
    OrtStatus *st = api->CreateStatus(ORT_INVALID_ARGUMENT, "qfleet self-check");
    bool ok = st && api->GetErrorCode(st) == ORT_INVALID_ARGUMENT
              && strcmp(api->GetErrorMessage(st), "qfleet self-check") == 0;
    if (st)
        api->ReleaseStatus(st);
    if (!ok)
        return qf_fw_why(why, why_len, QF_EDLOPEN, NULL,
                         "OrtApi self-check failed: a status does not read back");
    OrtMemoryInfo *mi = NULL;
    const char *name = NULL;
    int id = -1;
    st = api->CreateCpuMemoryInfo(ORT_ARENA_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &mi);
    if (!st)
        st = api->MemoryInfoGetName(mi, &name);
    if (!st)
        st = api->MemoryInfoGetId(mi, &id);
    ok = !st && name && strcmp(name, "Cpu") == 0 && id == 0;
    if (st)
        api->ReleaseStatus(st);
    api->ReleaseMemoryInfo(mi);
    if (!ok)
        return qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "OrtApi self-check failed: the CPU "
                         "memory info reads back as '%s', id %d (expected 'Cpu', 0)",
                         name ? name : "(none)", id);
    return 0;
}

/* Loads dir/libonnxruntime.so.1 into *lib and *api, checked; 0 or QF_EDLOPEN with why. */
static int ort_open(const char *dir, void **lib, const ort_api **api, char *why, size_t why_len)
{
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s", dir, ORT_LIB);
    if (n < 0 || (size_t)n >= sizeof path)
        return qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "QF_ORT_DIR: path too long");
    *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*lib)
        return qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "cannot load %s (%s); fetch it with "
                         "scripts/fetch-ort.sh (make ggml) or point QF_ORT_DIR at its folder",
                         path, dlerror());
    const ort_api_base *(*get_base)(void) = NULL;
    *(void **)&get_base = dlsym(*lib, "OrtGetApiBase");
    const ort_api_base *base = get_base ? get_base() : NULL;
    const char *version = base ? base->GetVersionString() : NULL;
    int major = 0, minor = 0, err = 0;
    if (!version || sscanf(version, "%d.%d", &major, &minor) != 2)
        err = qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "%s: no OrtGetApiBase or no version",
                        path);
    else if (major < ORT_MIN_MAJOR || (major == ORT_MIN_MAJOR && minor < ORT_MIN_MINOR))
        err = qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "%s is ONNX Runtime %s, older than "
                        "%d.%d, the oldest this adapter declares (ORT_API_VERSION %d)", path,
                        version, ORT_MIN_MAJOR, ORT_MIN_MINOR, ORT_API_VERSION_USED);
    else if (!(*api = base->GetApi(ORT_API_VERSION_USED)))
        err = qf_fw_why(why, why_len, QF_EDLOPEN, NULL, "%s (ONNX Runtime %s) does not serve "
                        "API version %d", path, version, ORT_API_VERSION_USED);
    else
        err = self_check(*api, why, why_len);
    if (err) {
        dlclose(*lib);
        *lib = NULL;
        *api = NULL;
        return err;
    }
    snprintf(g_ort.version, sizeof g_ort.version, "%s", version);
    return 0;
}

static void ort_load(void)
{
    const char *dir = getenv("QF_ORT_DIR");
#ifdef QF_ORT_DIR_DEFAULT
    if (!dir || !*dir)
        dir = QF_ORT_DIR_DEFAULT;
#endif
    if (!dir || !*dir)
        qf_fw_why(g_ort.why, sizeof g_ort.why, 0, NULL, "no ONNX Runtime folder: set "
                  "QF_ORT_DIR or fetch it with scripts/fetch-ort.sh (make ggml)");
    else
        ort_open(dir, &g_ort.lib, &g_ort.api, g_ort.why, sizeof g_ort.why);
}

static const ort_api *ort_get(void)
{
    pthread_once(&g_ort.once, ort_load);
    return g_ort.api;
}

static bool probe(char *version, size_t version_len)
{
    if (!ort_get())
        return false;
    if (version && version_len)
        snprintf(version, version_len, "%s", g_ort.version);
    return true;
}

/* ORT's log: dropped. Failures reach the result through the OrtStatus of the failing call. */
static void log_sink(void *param, int severity, const char *category, const char *logid,
                     const char *code_location, const char *message)
{
    (void)param, (void)severity, (void)category, (void)logid, (void)code_location,
        (void)message;
}

/* ---- the model ------------------------------------------------------------------------------ */

/* Our ort_int4 formats and where their blocks keep what MatMulNBits takes. */
typedef struct ort_scheme {
    const char *format;
    int block;          /* weights per block: MatMulNBits' block_size */
    size_t qs_off;      /* offset of the packed nibbles in our block */
    int zp_off;         /* offset of the zero point byte, or -1: symmetric (no zero_points) */
} ort_scheme;

static const ort_scheme k_schemes[] = {
    { "ort_int4_b32",  32,  offsetof(qf_block_ort_int4_b32, qs),  -1 },
    { "ort_int4_b128", 128, offsetof(qf_block_ort_int4_b128, qs), -1 },
    { "ort_int4_b128_asym", 128, offsetof(qf_block_ort_int4_b128_asym, qs),
      (int)offsetof(qf_block_ort_int4_b128_asym, zp) },
};

/* The initializers one model carries (dims and bytes), at most three. */
typedef struct ort_tensor {
    const char *name;
    int32_t type;               /* ONNX__TENSOR_PROTO__DATA_TYPE__* */
    int64_t dims[3];
    size_t n_dims;
    uint8_t *data;              /* owned */
    size_t len;
} ort_tensor;

typedef struct ort_graph {
    const char *op_type, *domain;
    int64_t k, n, block;        /* block > 0: MatMulNBits' block_size */
    ort_tensor init[3];
    int n_init;
} ort_graph;

static void graph_free(ort_graph *g)
{
    for (int i = 0; i < g->n_init; i++) {
        free(g->init[i].data);
        g->init[i].data = NULL;
    }
}

/* A named float tensor [1, d] for the graph's input or output. */
static void value_info(Onnx__ValueInfoProto *vi, Onnx__TypeProto *tp, Onnx__TypeProto__Tensor *tt,
                       Onnx__TensorShapeProto *shape, Onnx__TensorShapeProto__Dimension dim[2],
                       Onnx__TensorShapeProto__Dimension *dimp[2], const char *name, int64_t d)
{
    for (int i = 0; i < 2; i++) {
        onnx__tensor_shape_proto__dimension__init(&dim[i]);
        dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dim[i].dim_value = i == 0 ? 1 : d;
        dimp[i] = &dim[i];
    }
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = 2;
    shape->dim = dimp;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    vi->type = tp;
}

static void int_attr(Onnx__AttributeProto *a, const char *name, int64_t v)
{
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = true;
    a->i = v;
}

/* g serialized as an ONNX ModelProto into *buf (caller frees), *len bytes. */
static int graph_pack(const ort_graph *g, uint8_t **buf, size_t *len, char *why, size_t why_len)
{
    Onnx__TensorProto init[3];
    Onnx__TensorProto *initp[3];
    for (int i = 0; i < g->n_init; i++) {
        const ort_tensor *t = &g->init[i];
        onnx__tensor_proto__init(&init[i]);
        init[i].name = (char *)t->name;
        init[i].n_dims = t->n_dims;
        init[i].dims = (int64_t *)t->dims;
        init[i].has_data_type = true;
        init[i].data_type = t->type;
        init[i].has_raw_data = true;
        init[i].raw_data.len = t->len;
        init[i].raw_data.data = t->data;
        initp[i] = &init[i];
    }
    char *inputs[4] = { "A" };
    for (int i = 0; i < g->n_init; i++)
        inputs[1 + i] = (char *)g->init[i].name;
    char *outputs[1] = { "Y" };
    Onnx__AttributeProto attr[4];
    Onnx__AttributeProto *attrp[4];
    size_t n_attr = 0;
    if (g->block > 0) {
        int_attr(&attr[n_attr++], "K", g->k);
        int_attr(&attr[n_attr++], "N", g->n);
        int_attr(&attr[n_attr++], "bits", 4);
        int_attr(&attr[n_attr++], "block_size", g->block);
    }
    for (size_t i = 0; i < n_attr; i++)
        attrp[i] = &attr[i];

    Onnx__NodeProto node;
    onnx__node_proto__init(&node);
    node.name = "qfleet";
    node.op_type = (char *)g->op_type;
    node.domain = (char *)g->domain;
    node.n_input = 1 + (size_t)g->n_init;
    node.input = inputs;
    node.n_output = 1;
    node.output = outputs;
    node.n_attribute = n_attr;
    node.attribute = n_attr ? attrp : NULL;
    Onnx__NodeProto *nodep[1] = { &node };

    Onnx__ValueInfoProto vi[2];
    Onnx__ValueInfoProto *vip[2] = { &vi[0], &vi[1] };
    Onnx__TypeProto tp[2];
    Onnx__TypeProto__Tensor tt[2];
    Onnx__TensorShapeProto shape[2];
    Onnx__TensorShapeProto__Dimension dim[2][2];
    Onnx__TensorShapeProto__Dimension *dimp[2][2];
    value_info(&vi[0], &tp[0], &tt[0], &shape[0], dim[0], dimp[0], "A", g->k);
    value_info(&vi[1], &tp[1], &tt[1], &shape[1], dim[1], dimp[1], "Y", g->n);

    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = "qfleet";
    graph.n_node = 1;
    graph.node = nodep;
    graph.n_initializer = (size_t)g->n_init;
    graph.initializer = initp;
    graph.n_input = 1;
    graph.input = &vip[0];
    graph.n_output = 1;
    graph.output = &vip[1];

    /* ai.onnx 17 has MatMul as it is since 13; com.microsoft 1 is the only contrib opset. */
    Onnx__OperatorSetIdProto opset[2];
    Onnx__OperatorSetIdProto *opsetp[2] = { &opset[0], &opset[1] };
    onnx__operator_set_id_proto__init(&opset[0]);
    opset[0].domain = "";
    opset[0].has_version = true;
    opset[0].version = 17;
    onnx__operator_set_id_proto__init(&opset[1]);
    opset[1].domain = "com.microsoft";
    opset[1].has_version = true;
    opset[1].version = 1;

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = true;
    model.ir_version = 8;          /* the IR of opset 17 */
    model.producer_name = "qfleet";
    model.graph = &graph;
    model.n_opset_import = 2;
    model.opset_import = opsetp;

    *len = onnx__model_proto__get_packed_size(&model);
    *buf = malloc(*len);
    if (!*buf)
        return qf_fw_why(why, why_len, QF_ENOMEM, NULL, "out of memory for a %zu-byte model",
                         *len);
    size_t packed = onnx__model_proto__pack(&model, *buf);
    assert(packed == *len);
    (void)packed;
    return 0;
}

/* The f32 baseline: MatMul(A, W^T) with W^T [K, N] built from our rows (blocked transpose). */
static int graph_matmul(const float *w, int64_t n, int64_t k, ort_graph *g, char *why,
                        size_t why_len)
{
    size_t bytes = (size_t)n * (size_t)k * sizeof(float);
    float *wt = malloc(bytes);
    if (!wt)
        return qf_fw_why(why, why_len, QF_ENOMEM, NULL, "out of memory for W^T (%zu bytes)",
                         bytes);
    enum { TILE = 64 };
    for (int64_t r0 = 0; r0 < n; r0 += TILE)
        for (int64_t c0 = 0; c0 < k; c0 += TILE)
            for (int64_t r = r0; r < r0 + TILE && r < n; r++)
                for (int64_t c = c0; c < c0 + TILE && c < k; c++)
                    wt[c * n + r] = w[r * k + c];
    *g = (ort_graph){ .op_type = "MatMul", .domain = "", .k = k, .n = n, .n_init = 1 };
    g->init[0] = (ort_tensor){ .name = "W", .type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                               .dims = { k, n }, .n_dims = 2, .data = (uint8_t *)wt,
                               .len = bytes };
    return 0;
}

/* MatMulNBits over our rows wq of scheme s (the mapping is qf_blocks.h's): B [N][kb][blk/2]
 * is our nibbles, scales [N * kb] our f32 scales, zero_points [N * ceil(kb/2)] two blocks'
 * zero points per byte, low nibble first, an odd kb's last high nibble 8 as MLAS writes it. */
static int graph_nbits(const ort_scheme *s, qf_format fmt, const uint8_t *wq, int64_t n,
                       int64_t k, ort_graph *g, char *why, size_t why_len)
{
    int64_t kb = k / s->block, half = s->block / 2, zrow = (kb + 1) / 2;
    size_t type_size = qf_format_get(fmt)->type_size, row_size = qf_format_row_size(fmt, k);
    *g = (ort_graph){ .op_type = "MatMulNBits", .domain = "com.microsoft", .k = k, .n = n,
                      .block = s->block, .n_init = s->zp_off >= 0 ? 3 : 2 };
    g->init[0] = (ort_tensor){ .name = "B", .type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                               .dims = { n, kb, half }, .n_dims = 3,
                               .len = (size_t)(n * kb * half) };
    g->init[1] = (ort_tensor){ .name = "scales", .type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                               .dims = { n * kb }, .n_dims = 1,
                               .len = (size_t)(n * kb) * sizeof(float) };
    g->init[2] = (ort_tensor){ .name = "zero_points", .type = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                               .dims = { n * zrow }, .n_dims = 1, .len = (size_t)(n * zrow) };
    for (int i = 0; i < g->n_init; i++) {
        g->init[i].data = calloc(1, g->init[i].len);
        if (!g->init[i].data) {
            graph_free(g);
            return qf_fw_why(why, why_len, QF_ENOMEM, NULL, "out of memory for %s (%zu bytes)",
                             g->init[i].name, g->init[i].len);
        }
    }
    uint8_t *b = g->init[0].data, *scales = g->init[1].data;
    uint8_t *zp = g->n_init > 2 ? g->init[2].data : NULL;
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < kb; j++) {
            const uint8_t *blk = wq + (size_t)r * row_size + (size_t)j * type_size;
            memcpy(scales + (size_t)(r * kb + j) * 4, blk, 4);   /* scale: the block's first 4 */
            memcpy(b + (size_t)(r * kb + j) * (size_t)half, blk + s->qs_off, (size_t)half);
            if (zp)
                zp[r * zrow + j / 2] |= (uint8_t)((blk[s->zp_off] & 0x0f) << (j & 1 ? 4 : 0));
        }
        if (zp && (kb & 1))
            zp[r * zrow + zrow - 1] |= 0x80;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* ORT's message for a failed call (st != NULL) into why, st released. QF_EIO stands for every
 * failure ORT reports: the library said no, and its message says why. */
static int ort_fail(const ort_api *api, OrtStatus *st, const char *call, char *why,
                    size_t why_len)
{
    qf_fw_why(why, why_len, QF_EIO, NULL, "%s: %s", call, api->GetErrorMessage(st));
    api->ReleaseStatus(st);
    return QF_EIO;
}

/* Calls api->fn(...); on failure rc gets ORT's reason (named by fn) and control goes to done. */
#define ORT_TRY(fn, ...)                                           \
    do {                                                           \
        OrtStatus *st_ = api->fn(__VA_ARGS__);                     \
        if (st_) {                                                 \
            rc = ort_fail(api, st_, #fn, why, why_len);            \
            goto done;                                             \
        }                                                          \
    } while (0)

static OrtEnv *ort_env(const ort_api *api, char *why, size_t why_len)
{
    pthread_mutex_lock(&g_ort.env_lock);
    if (!g_ort.env) {
        OrtStatus *st = api->CreateEnvWithCustomLogger(log_sink, NULL, ORT_LOGGING_LEVEL_ERROR,
                                                       "qfleet", &g_ort.env);
        if (st) {
            ort_fail(api, st, "CreateEnvWithCustomLogger", why, why_len);
            g_ort.env = NULL;
        }
    }
    OrtEnv *env = g_ort.env;
    pthread_mutex_unlock(&g_ort.env_lock);
    return env;
}

/* Creates a session of the model (buf, len) with spec->threads intra-op threads and runs
 * spec->warmup + spec->reps passes of x into y, the timed ones into samples. 0, or QF_EIO with
 * ORT's reason in why. */
static int session_run(const ort_api *api, const uint8_t *buf, size_t len,
                       const qf_job_spec *spec, float *x, float *y, double *samples, char *why,
                       size_t why_len)
{
    int64_t n = spec->rows, k = spec->cols;
    int rc = 0;
    OrtSessionOptions *opts = NULL;
    OrtSession *session = NULL;
    OrtMemoryInfo *mem = NULL;
    OrtValue *in = NULL, *outv = NULL;
    OrtTensorTypeAndShapeInfo *info = NULL;
    OrtEnv *env = ort_env(api, why, why_len);
    if (!env)
        return QF_EIO;

    ORT_TRY(CreateSessionOptions, &opts);
    ORT_TRY(SetIntraOpNumThreads, opts, (int)spec->threads);
    ORT_TRY(SetInterOpNumThreads, opts, 1);
    ORT_TRY(SetSessionExecutionMode, opts, ORT_SEQUENTIAL);
    ORT_TRY(CreateSessionFromArray, env, buf, len, opts, &session);
    size_t n_in = 0, n_out = 0;
    ORT_TRY(SessionGetInputCount, session, &n_in);
    ORT_TRY(SessionGetOutputCount, session, &n_out);
    if (n_in != 1 || n_out != 1) {
        rc = qf_fw_why(why, why_len, QF_EIO, NULL, "the session has %zu inputs and %zu "
                       "outputs, expected 1 and 1 (is OrtApi declared right?)", n_in, n_out);
        goto done;
    }

    /* Input and output live in our buffers, so a pass allocates nothing of its own. */
    ORT_TRY(CreateCpuMemoryInfo, ORT_ARENA_ALLOCATOR, ORT_MEM_TYPE_DEFAULT, &mem);
    int64_t in_shape[2] = { 1, k }, out_shape[2] = { 1, n };
    ORT_TRY(CreateTensorWithDataAsOrtValue, mem, x, (size_t)k * sizeof(float), in_shape, 2,
                                                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &in);
    ORT_TRY(CreateTensorWithDataAsOrtValue, mem, y, (size_t)n * sizeof(float), out_shape, 2,
                                                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &outv);
    const char *in_names[1] = { "A" }, *out_names[1] = { "Y" };
    const OrtValue *ins[1] = { in };
    for (uint32_t i = 0; i < spec->warmup + spec->reps; i++) {
        double t0 = qf_time_mono();
        ORT_TRY(Run, session, NULL, in_names, ins, 1, out_names, 1, &outv);
        double t = qf_time_mono() - t0;
        if (i >= spec->warmup)
            samples[i - spec->warmup] = t > 1e-9 ? t : 1e-9;
    }

    void *data = NULL;
    size_t nd = 0;
    int64_t dims[2] = { 0, 0 };
    ORT_TRY(GetTensorMutableData, outv, &data);
    ORT_TRY(GetTensorTypeAndShape, outv, &info);
    ORT_TRY(GetDimensionsCount, info, &nd);
    if (nd == 2)
        ORT_TRY(GetDimensions, info, dims, 2);
    if (data != y || nd != 2 || dims[0] != 1 || dims[1] != n) {
        rc = qf_fw_why(why, why_len, QF_EIO, NULL, "ORT's output is not our [1, %" PRId64
                       "] buffer (%zu dims, [%" PRId64 ", %" PRId64 "]%s)", n, nd, dims[0],
                       dims[1], data != y ? ", another buffer" : "");
    }
done:
    if (info)
        api->ReleaseTensorTypeAndShapeInfo(info);
    if (outv)
        api->ReleaseValue(outv);
    if (in)
        api->ReleaseValue(in);
    if (mem)
        api->ReleaseMemoryInfo(mem);
    if (session)
        api->ReleaseSession(session);
    if (opts)
        api->ReleaseSessionOptions(opts);
    return rc;
}

/* The job's weights *w (consumed: freed, or for f32 moved) as our rows *wq in spec->format's
 * layout, and the packed model that runs them, *model (*model_len bytes); caller frees both.
 * scheme NULL: the f32 baseline, whose row layout is the float array itself. */
static int model_build(const qf_job_spec *spec, qf_format fmt, const ort_scheme *scheme,
                       float **w, uint8_t **wq, uint8_t **model, size_t *model_len, char *why,
                       size_t why_len)
{
    int64_t n = spec->rows, k = spec->cols;
    ort_graph g = { 0 };
    int err;
    if (!scheme) {
        assert(qf_format_row_size(fmt, k) == (size_t)k * sizeof(float));
        *wq = (uint8_t *)*w;
        *w = NULL;
        err = graph_matmul((const float *)*wq, n, k, &g, why, why_len);
    } else {
        size_t bytes = qf_format_row_size(fmt, k) * (size_t)n;
        *wq = malloc(bytes);
        if (!*wq)
            err = qf_fw_why(why, why_len, QF_ENOMEM, NULL, "out of memory for %zu quantized "
                            "bytes", bytes);
        else if ((err = qf_quantize(fmt, *w, *wq, n, k)) != 0)
            qf_fw_why(why, why_len, err, NULL, "quantizing: %s", qf_strerror(err));
        else
            err = graph_nbits(scheme, fmt, *wq, n, k, &g, why, why_len);
        free(*w);
        *w = NULL;
    }
    if (!err) {
        err = graph_pack(&g, model, model_len, why, why_len);
        graph_free(&g);   /* the packed model holds its own copy */
    }
    return err;
}

static int run(const qf_job_spec *spec, qf_job_result *out)
{
    assert(spec && out);
    const ort_api *api = ort_get();
    if (!api)
        return qf_job_result_fail(out, "ort: %s", g_ort.why);
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0)
        return qf_job_result_fail(out, "ort: format: unknown format '%s'", spec->format);
    const ort_scheme *scheme = NULL;
    for (size_t i = 0; i < sizeof k_schemes / sizeof k_schemes[0]; i++)
        if (strcmp(k_schemes[i].format, spec->format) == 0)
            scheme = &k_schemes[i];
    if (!scheme && strcmp(spec->format, qf_fw_ort.baseline) != 0)
        return qf_job_result_fail(out, "ort: format %s is not one of %s", spec->format,
                                  qf_fw_ort.formats);
    if (spec->threads > (uint32_t)INT32_MAX)
        return qf_job_result_fail(out, "ort: threads: %" PRIu32 " is too many", spec->threads);

    char why[QF_JOB_ERROR_MAX - 32];
    float *w = NULL, *x = NULL, *y = NULL, *yref = NULL;
    uint8_t *wq = NULL, *model = NULL;
    size_t model_len = 0;
    int err = qf_framework_inputs(spec, &w, &x, out->dataset_sha256, why, sizeof why);
    if (!err)
        err = model_build(spec, fmt, scheme, &w, &wq, &model, &model_len, why, sizeof why);
    y = malloc((size_t)spec->rows * sizeof *y);
    yref = malloc((size_t)spec->rows * sizeof *yref);
    out->samples = malloc((size_t)spec->reps * sizeof *out->samples);
    if (!err && (!y || !yref || !out->samples))
        err = qf_fw_why(why, sizeof why, QF_ENOMEM, NULL, "out of memory for the output and "
                        "%" PRIu32 " samples", spec->reps);
    if (!err)
        err = session_run(api, model, model_len, spec, x, y, out->samples, why, sizeof why);
    free(model);
    if (!err)
        err = qf_framework_reference(spec, wq, x, yref, why, sizeof why);
    if (!err) {
        out->status = QF_JOB_OK;
        out->n_samples = spec->reps;
        qf_framework_result(&qf_fw_ort, g_ort.version, spec, y, yref, out);
    } else {
        qf_job_result_fail(out, "ort %s: %s", spec->format, why);
    }
    free(w);
    free(wq);
    free(x);
    free(y);
    free(yref);
    return 0;
}

const qf_framework qf_fw_ort = {
    .name = "ort",
    .title = "ONNX Runtime (Olive)",
    .formats = "f32 ort_int4_b32 ort_int4_b128 ort_int4_b128_asym",
    .baseline = "f32",
    .probe = probe,
    .run = run,
};
