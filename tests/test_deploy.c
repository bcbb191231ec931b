/* test_deploy.c - deploy/ is checked against itself and against the binary it deploys.
 *
 * The Kubernetes manifests (the YAML files in deploy/k8s) are parsed with libyaml and held to what
 * docs/deploy.md promises: every document names its apiVersion, kind and metadata.name; the
 * coordinator is a StatefulSet of exactly one replica with its database on a claim template, and
 * a Service on 7420; agents are DaemonSets placed by a device-class node label; nothing runs as
 * root, escalates, or mounts a host path; every Secret a pod mounts is one secrets.example.yaml
 * describes; every kustomization resource exists. The systemd units keep their hardening
 * (DynamicUser, ProtectSystem=strict, NoNewPrivileges, an empty capability set). And every
 * `--option` the units, the manifests, the Containerfile and deploy/enrol-agent.sh give qfleet
 * is one that `qfleet coordinator --help` or `qfleet agent --help` lists, so a renamed flag
 * cannot silently break a deployment. Static files only: milliseconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DOCS 32

typedef struct manifest {
    char          file[64];
    yaml_document_t doc;
} manifest;

static manifest g_docs[MAX_DOCS];
static int      g_n_docs;

static char *slurp(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", QF_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* --- YAML navigation ----------------------------------------------------------------------- */

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

/* get() along a dotted path: "spec.template.spec". */
static yaml_node_t *path(yaml_document_t *d, yaml_node_t *n, const char *dotted)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dotted);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && n; k = strtok_r(NULL, ".", &save))
        n = get(d, n, k);
    return n;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* a and b equal, a possibly NULL (a missing key) */
static bool eq(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

static size_t seq_len(yaml_node_t *n)
{
    return n && n->type == YAML_SEQUENCE_NODE
               ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 0;
}

static yaml_node_t *seq_at(yaml_document_t *d, yaml_node_t *n, size_t i)
{
    return yaml_document_get_node(d, n->data.sequence.items.start[i]);
}

static const char *str_at(manifest *m, const char *dotted)
{
    return scalar(path(&m->doc, yaml_document_get_root_node(&m->doc), dotted));
}

static void load_file(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "deploy/k8s/%s", name);
    char *text = slurp(rel);
    yaml_parser_t p;
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    for (;;) {
        assert_true(g_n_docs < MAX_DOCS);
        manifest *m = &g_docs[g_n_docs];
        if (!yaml_parser_load(&p, &m->doc))
            fail_msg("%s: YAML error at line %zu: %s", rel, p.problem_mark.line + 1, p.problem);
        if (!yaml_document_get_root_node(&m->doc)) {    /* end of the stream */
            yaml_document_delete(&m->doc);
            break;
        }
        snprintf(m->file, sizeof m->file, "%s", name);
        g_n_docs++;
    }
    yaml_parser_delete(&p);
    free(text);
}

static manifest *find_kind(const char *kind, int nth)
{
    for (int i = 0; i < g_n_docs; i++)
        if (eq(str_at(&g_docs[i], "kind"), kind) && nth-- == 0)
            return &g_docs[i];
    return NULL;
}

static bool has_secret(const char *name)
{
    for (int i = 0; find_kind("Secret", i); i++)
        if (eq(str_at(find_kind("Secret", i), "metadata.name"), name))
            return true;
    return false;
}

static int setup(void **state)
{
    (void)state;
    static const char *const files[] = { "namespace.yaml", "coordinator.yaml", "agents.yaml",
                                         "secrets.example.yaml" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        load_file(files[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_n_docs; i++)
        yaml_document_delete(&g_docs[i].doc);
    g_n_docs = 0;
    return 0;
}

/* --- the binary's options ------------------------------------------------------------------ */

/* `qfleet SUB --help`, run once per SUB (the sanitizer build starts slowly). */
static const char *help_text(const char *sub)
{
    static struct { char sub[16]; char *text; } cache[8];
    size_t i = 0;
    for (; i < 8 && cache[i].text; i++)
        if (strcmp(cache[i].sub, sub) == 0)
            return cache[i].text;
    assert_true(i < 8);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' %s --help 2>&1", QF_BINARY, sub);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n;
    while ((n = fread(text + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    pclose(p);
    text[len] = '\0';
    snprintf(cache[i].sub, sizeof cache[i].sub, "%s", sub);
    cache[i].text = text;                 /* kept for the program's life */
    return text;
}

/* True if `qfleet SUB --help` lists opt ("--allow") as a whole word. */
static bool help_lists(const char *sub, const char *opt)
{
    const char *text = help_text(sub);
    size_t n = strlen(opt);
    for (const char *s = strstr(text, opt); s; s = strstr(s + 1, opt))
        if (s[n] == ' ' || s[n] == ',' || s[n] == '\n' || s[n] == '=' || s[n] == '\0')
            return true;
    return false;
}

/* Every "--word" in text after "qfleet SUB" / "qfleet, SUB" must be listed by SUB --help. */
static void check_options(const char *what, const char *text, const char *sub)
{
    for (const char *s = strstr(text, "--"); s; s = strstr(s + 2, "--")) {
        if (s > text && s[-1] != ' ' && s[-1] != '"' && s[-1] != '\n' && s[-1] != '[')
            continue;                               /* "a--b", a comment's "---" */
        char opt[64];
        size_t n = 0;
        while (n + 1 < sizeof opt && (s[n] == '-' || (s[n] >= 'a' && s[n] <= 'z')))
            opt[n] = s[n], n++;
        opt[n] = '\0';
        if (n <= 2)
            continue;
        if (!help_lists(sub, opt))
            fail_msg("%s gives qfleet %s %s, which `qfleet %s --help` does not list", what,
                     sub, opt, sub);
    }
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_every_document_is_named(void **state)
{
    (void)state;
    assert_true(g_n_docs >= 7);
    for (int i = 0; i < g_n_docs; i++) {
        manifest *m = &g_docs[i];
        if (!str_at(m, "apiVersion") || !str_at(m, "kind") || !str_at(m, "metadata.name"))
            fail_msg("%s: document %d lacks apiVersion, kind or metadata.name", m->file, i);
    }
    char *k = slurp("deploy/k8s/kustomization.yaml");
    for (const char *f = strstr(k, "  - "); f; f = strstr(f + 1, "  - ")) {
        char name[64];
        if (sscanf(f + 4, "%63s", name) == 1) {
            char rel[128];
            snprintf(rel, sizeof rel, "deploy/k8s/%s", name);
            free(slurp(rel));                        /* fails if it is not there */
        }
    }
    free(k);
}

static void test_coordinator_statefulset(void **state)
{
    (void)state;
    manifest *m = find_kind("StatefulSet", 0);
    assert_non_null(m);
    yaml_document_t *d = &m->doc;
    yaml_node_t *spec = path(d, yaml_document_get_root_node(d), "spec");
    assert_true(eq(scalar(get(d, spec, "replicas")), "1"));        /* one SQLite writer */
    yaml_node_t *claims = get(d, spec, "volumeClaimTemplates");
    assert_int_equal(seq_len(claims), 1);
    const char *claim = scalar(path(d, seq_at(d, claims, 0), "metadata.name"));
    assert_non_null(claim);
    yaml_node_t *c = seq_at(d, path(d, spec, "template.spec.containers"), 0);
    /* the database lives on the claim */
    bool db_on_claim = false;
    yaml_node_t *mounts = get(d, c, "volumeMounts");
    for (size_t i = 0; i < seq_len(mounts); i++)
        db_on_claim |= eq(scalar(get(d, seq_at(d, mounts, i), "name")), claim) &&
                       eq(scalar(get(d, seq_at(d, mounts, i), "mountPath")), "/var/lib/qfleet");
    assert_true(db_on_claim);
    bool db = false, curve = false, allow = false;
    yaml_node_t *args = get(d, c, "args");
    for (size_t i = 0; i < seq_len(args); i++) {
        const char *a = scalar(seq_at(d, args, i));
        assert_non_null(a);
        db |= strncmp(a, "--db=/var/lib/qfleet/", 21) == 0;
        curve |= strncmp(a, "--curve-secret=", 15) == 0;
        allow |= strncmp(a, "--allow=", 8) == 0;
    }
    assert_true(db && curve && allow);
    manifest *svc = find_kind("Service", 0);
    assert_non_null(svc);
    yaml_node_t *ports = path(&svc->doc, yaml_document_get_root_node(&svc->doc), "spec.ports");
    assert_true(seq_len(ports) >= 1);
    assert_true(eq(scalar(get(&svc->doc, seq_at(&svc->doc, ports, 0), "port")), "7420"));
}

static void test_agents_daemonset(void **state)
{
    (void)state;
    manifest *m = find_kind("DaemonSet", 0);
    assert_non_null(m);
    yaml_document_t *d = &m->doc;
    yaml_node_t *pod = path(d, yaml_document_get_root_node(d), "spec.template.spec");
    yaml_node_t *c = seq_at(d, get(d, pod, "containers"), 0);
    bool name = false, key = false, server = false;
    yaml_node_t *args = get(d, c, "args");
    for (size_t i = 0; i < seq_len(args); i++) {
        const char *a = scalar(seq_at(d, args, i));
        assert_non_null(a);
        name |= strcmp(a, "--name=$(NODE_NAME)") == 0;
        key |= strncmp(a, "--curve-secret=", 15) == 0;
        server |= strncmp(a, "--server-key=", 13) == 0;
    }
    assert_true(name && key && server);
}

/* The device-class label is a key with dots and a slash: get() on the node selector itself. */
static void test_agents_placed_by_device_class(void **state)
{
    (void)state;
    for (int n = 0; find_kind("DaemonSet", n); n++) {
        manifest *m = find_kind("DaemonSet", n);
        yaml_document_t *d = &m->doc;
        yaml_node_t *sel = path(d, yaml_document_get_root_node(d), "spec.template.spec.nodeSelector");
        const char *cls = scalar(get(d, sel, "qfleet.io/device-class"));
        if (!cls || !*cls)
            fail_msg("%s: DaemonSet %s is not placed by qfleet.io/device-class", m->file,
                     str_at(m, "metadata.name"));
    }
}

static void check_pod(manifest *m, yaml_node_t *pod)
{
    yaml_document_t *d = &m->doc;
    const char *who = str_at(m, "metadata.name");
    if (!eq(scalar(path(d, pod, "securityContext.runAsNonRoot")), "true"))
        fail_msg("%s: %s may run as root", m->file, who);
    yaml_node_t *cs = get(d, pod, "containers");
    for (size_t i = 0; i < seq_len(cs); i++) {
        yaml_node_t *sc = get(d, seq_at(d, cs, i), "securityContext");
        if (!eq(scalar(get(d, sc, "allowPrivilegeEscalation")), "false") ||
            !eq(scalar(get(d, sc, "readOnlyRootFilesystem")), "true"))
            fail_msg("%s: a container of %s may escalate or write its root", m->file, who);
    }
    yaml_node_t *vols = get(d, pod, "volumes");
    for (size_t i = 0; i < seq_len(vols); i++) {
        yaml_node_t *v = seq_at(d, vols, i);
        if (get(d, v, "hostPath"))
            fail_msg("%s: %s mounts a host path (the namespace is 'restricted')", m->file, who);
        const char *secret = scalar(path(d, v, "secret.secretName"));
        if (secret && !has_secret(secret))
            fail_msg("%s: %s mounts Secret %s, which secrets.example.yaml does not describe",
                     m->file, who, secret);
    }
}

static void test_pods_are_restricted(void **state)
{
    (void)state;
    static const char *const kinds[] = { "StatefulSet", "DaemonSet" };
    for (size_t k = 0; k < 2; k++)
        for (int n = 0; find_kind(kinds[k], n); n++) {
            manifest *m = find_kind(kinds[k], n);
            check_pod(m, path(&m->doc, yaml_document_get_root_node(&m->doc), "spec.template.spec"));
        }
}

static void test_systemd_units_hardened(void **state)
{
    (void)state;
    static const char *const units[] = { "deploy/systemd/qfleet-coordinator.service",
                                         "deploy/systemd/qfleet-agent@.service" };
    static const char *const must[] = { "\nDynamicUser=yes\n", "\nProtectSystem=strict\n",
                                         "\nNoNewPrivileges=yes\n", "\nCapabilityBoundingSet=\n",
                                         "\nProtectHome=yes\n", "\nPrivateTmp=yes\n",
                                         "\nLoadCredential=", "\nRestart=always\n" };
    for (size_t u = 0; u < 2; u++) {
        char *text = slurp(units[u]);
        for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
            if (!strstr(text, must[i]))
                fail_msg("%s: lacks %s", units[u], must[i] + 1);
        free(text);
    }
}

/* The flags the deploy files pass are the binary's. */
static void test_options_exist(void **state)
{
    (void)state;
    static const struct { const char *file, *sub, *from; } uses[] = {
        { "deploy/systemd/qfleet-coordinator.service", "coordinator", "ExecStart=" },
        { "deploy/systemd/qfleet-agent@.service", "agent", "ExecStart=" },
        { "deploy/systemd/qfleet-agent-insecure.conf", "agent", "ExecStart=/" },
        { "deploy/k8s/coordinator.yaml", "coordinator", "args:" },
        { "deploy/k8s/agents.yaml", "agent", "args:" },
        { "deploy/Containerfile", "coordinator", "CMD [" },
    };
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        char *text = slurp(uses[i].file);
        const char *from = strstr(text, uses[i].from);
        if (!from)
            fail_msg("%s: no %s", uses[i].file, uses[i].from);
        /* up to the end of that block: the next blank line */
        char *end = strstr(from, "\n\n");
        if (end)
            *end = '\0';
        check_options(uses[i].file, from, uses[i].sub);
        free(text);
    }
    /* what enrol-agent.sh puts in QF_AGENT_OPTS */
    assert_true(help_lists("agent", "--slots"));
    assert_true(help_lists("agent", "--insecure"));
    assert_true(help_lists("keygen", "--fingerprint"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_document_is_named),
        cmocka_unit_test(test_coordinator_statefulset),
        cmocka_unit_test(test_agents_daemonset),
        cmocka_unit_test(test_agents_placed_by_device_class),
        cmocka_unit_test(test_pods_are_restricted),
        cmocka_unit_test(test_systemd_units_hardened),
        cmocka_unit_test(test_options_exist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
