/* main.c - the qfleet binary: one table of subcommands and the dispatch over it, like git.
 *
 * Every subcommand quantfleet will ever have is a row of k_commands, with a one-line summary
 * for `qfleet --help`; a row whose function is still NULL is a planned command, listed as
 * such and refused with exit status 2, so an issue that implements one fills in one pointer.
 * Subcommands receive their own argv (argv[0] is the command's name) and own their options
 * (getopt_long), their output and their error lines; what they return is the exit status:
 * 0 success, 1 runtime failure, 2 usage error (qf_cli_args.h). This file only handles what
 * comes before the command name (--help, --version) and the final check that stdout was
 * really written, so `qfleet formats > /dev/full` fails instead of lying.
 */
#include <stdio.h>
#include <string.h>

#include "qf_agent.h"
#include "qf_bench.h"
#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_coordinator.h"
#include "qf_err.h"
#include "qf_version.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);  /* NULL: planned, not in this build yet */
} command;

static const command k_commands[] = {
    { "formats",     "list the formats: block geometry, bits per weight, kernels",
                     qf_cmd_formats },
    { "bench",       "time quantize/dequantize/matvec of formats, or the fleet itself",
                     qf_cmd_bench },
    { "run",         "run a suite locally: coordinator and agents in one process",
                     qf_cmd_run },
    { "coordinator", "serve the job queue and the results store to a fleet",
                     qf_coordinator_main },
    { "agent",       "join a coordinator and run its jobs on this machine",
                     qf_agent_main },
    { "submit",      "send a suite to a coordinator",                  qf_cmd_submit },
    { "cancel",      "cancel a run's queued and running jobs",          qf_cmd_cancel },
    { "status",      "show a coordinator's queue, agents and progress", qf_cmd_status },
    { "report",      "write the HTML, CSV and Markdown report of stored results",
                     qf_cmd_report },
    { "compare",     "compare two commits' results, flagging significant changes",
                     qf_cmd_compare },
    { "quantize",    "quantize a GGUF model or a Hugging Face llama checkpoint to GGUF",
                     qf_cmd_quantize },
    { "gptq",        "GPTQ one layer against round-to-nearest: output errors, run time",
                     qf_cmd_gptq },
    { "dataset",     "fetch, verify and list datasets",
                     qf_cmd_dataset },
    { "eval",        "perplexity, KL divergence and tokens/s of a GGUF llama model",
                     qf_cmd_eval },
    { "keygen",      "make a CURVE key pair to enrol a coordinator, agent or client",
                     qf_cmd_keygen },
};

#define N_COMMANDS (sizeof k_commands / sizeof k_commands[0])

static void print_help(FILE *out)
{
    fputs("usage: qfleet [--version] [--help] <command> [<options>]\n"
          "\n"
          "quantfleet measures what each LLM weight quantization scheme costs in memory,\n"
          "buys in speed and loses in quality.\n"
          "\n"
          "Commands:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (k_commands[i].fn)
            fprintf(out, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    bool planned = false;
    for (size_t i = 0; i < N_COMMANDS; i++)
        planned |= !k_commands[i].fn;
    if (planned)
        fputs("\nPlanned, not available in this build yet:\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!k_commands[i].fn)
            fprintf(out, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
    fputs("\nRun 'qfleet <command> --help' for a command's options.\n", out);
}

static void print_version(void)
{
    printf("qfleet %s\n", QF_VERSION);
    printf("commit:   %s%s\n", QF_GIT_COMMIT, QF_GIT_DIRTY ? "-dirty" : "");
    printf("compiler: %s\n", QF_C_COMPILER);
    printf("build:    %s\n", QF_BUILD_TYPE[0] ? QF_BUILD_TYPE : "(none)");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(k_commands[i].name, name) == 0)
            return &k_commands[i];
    return NULL;
}

/* Runs the named command with argv (argv[0] == name); the exit status. */
static int dispatch(const char *name, int argc, char **argv)
{
    const command *c = find_command(name);
    if (!c) {
        qf_errorf(QF_EUSAGE, "'%s' is not a qfleet command; see 'qfleet --help'", name);
        return QF_EXIT_USAGE;
    }
    if (!c->fn) {
        qf_errorf(QF_EUNSUP, "'%s' is not available in this build yet", name);
        return QF_EXIT_USAGE;
    }
    return c->fn(argc, argv);
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return QF_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        if (argc == 2) {
            print_help(stdout);
            return QF_EXIT_OK;
        }
        if (argc == 3 && first[0] != '-') { /* `qfleet help bench` == `qfleet bench --help` */
            char help_opt[] = "--help";
            char *sub_argv[] = { argv[2], help_opt, NULL };
            return dispatch(argv[2], 2, sub_argv);
        }
        qf_errorf(QF_EUSAGE, "'%s' takes at most one command name; see 'qfleet --help'", first);
        return QF_EXIT_USAGE;
    }
    if (strcmp(first, "--version") == 0) {
        if (argc != 2) {
            qf_errorf(QF_EUSAGE, "--version takes no arguments");
            return QF_EXIT_USAGE;
        }
        print_version();
        return QF_EXIT_OK;
    }
    if (first[0] == '-') {
        qf_errorf(QF_EUSAGE, "unknown option '%s'; see 'qfleet --help'", first);
        return QF_EXIT_USAGE;
    }
    return dispatch(first, argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    int status = run(argc, argv);
    /* Output goes through stdio buffers; a full disk or closed pipe only shows up here. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        qf_errorf(QF_EIO, "cannot write to standard output");
        if (status == QF_EXIT_OK)
            status = QF_EXIT_FAILURE;
    }
    return status;
}
