/* qf_cli_args.h - strict parsing of command-line values, shared by every qfleet subcommand.
 *
 * Command lines come from people and from CI scripts, so a value is accepted only when the
 * whole string is a base-10 number inside the documented range: "12abc", " 12", "", "0x10",
 * an overflowing "99999999999999999999" and an out-of-range "-5" are all refused with one line
 * on stderr that names the command, the option and the bad text, and QF_EUSAGE comes back
 * (the CLI maps it to exit status 2). Nothing here allocates or keeps state.
 * Called while parsing options, once per option: not hot.
 */
#ifndef QF_CLI_ARGS_H
#define QF_CLI_ARGS_H

#include <stdint.h>

/* Exit statuses shared by every subcommand: usage errors (bad option, bad value, unknown
 * command) exit 2, runtime failures (out of memory, a thread that would not start) exit 1. */
enum { QF_EXIT_OK = 0, QF_EXIT_FAILURE = 1, QF_EXIT_USAGE = 2 };

/* Parses text as a base-10 integer in [min, max] (an optional sign, then digits, nothing
 * else). On failure prints "qfleet: <cmd>: <opt> '<text>' is not an integer in [min, max]"
 * and returns QF_EUSAGE; *out is written only on success. */
int qf_cli_parse_int(const char *cmd, const char *opt, const char *text,
                     int64_t min, int64_t max, int64_t *out);

/* Parses a byte count: digits, then optionally one binary suffix K, M, G or T (any case,
 * powers of 1024), optionally followed by "iB": "8G", "512MiB", "4096". Range and message as
 * qf_cli_parse_int, with the bounds printed in bytes. */
int qf_cli_parse_size(const char *cmd, const char *opt, const char *text,
                      uint64_t min, uint64_t max, uint64_t *out);

/* Reports the option getopt_long just rejected, as one line naming it and pointing to
 * `qfleet <cmd> --help`, and returns QF_EUSAGE. rc is what getopt_long returned ('?' or ':'
 * with a ':'-leading optstring and opterr = 0); argc/argv are what was passed to it. */
int qf_cli_reject_option(const char *cmd, int rc, int argc, char *const argv[]);

#endif
