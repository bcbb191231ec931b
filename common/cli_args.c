/* cli_args.c - strict integer and size parsing for command-line options (see qf_cli_args.h).
 *
 * strtoll alone is too forgiving for a benchmark harness: it skips leading blanks, stops at the
 * first non-digit without complaint and saturates on overflow. A typo like "--rows 4O96" must
 * not quietly run a 4-row benchmark, so every check strtoll leaves out is made here, and each
 * refusal is one stderr line that repeats the option and the text the user typed.
 */
#include "qf_cli_args.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"

/* True when text is an optional sign followed by one or more decimal digits and nothing else.
 * strtoll would also take blanks, "0x" prefixes under base 0, and trailing junk. */
static int is_decimal(const char *text)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    return *p == '\0';
}

static int bad_int(const char *cmd, const char *opt, const char *text, int64_t min, int64_t max)
{
    return qf_errorf(QF_EUSAGE, "%s: %s '%s' is not an integer in [%" PRId64 ", %" PRId64 "]",
                     cmd, opt, text, min, max);
}

int qf_cli_parse_int(const char *cmd, const char *opt, const char *text,
                     int64_t min, int64_t max, int64_t *out)
{
    assert(cmd && opt && text && out && min <= max);
    if (!is_decimal(text))
        return bad_int(cmd, opt, text, min, max);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    /* ERANGE: the digits overflow int64; the value is certainly outside [min, max]. */
    if (errno == ERANGE || *end != '\0' || v < min || v > max)
        return bad_int(cmd, opt, text, min, max);
    *out = (int64_t)v;
    return 0;
}

static int bad_size(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max)
{
    return qf_errorf(QF_EUSAGE, "%s: %s '%s' is not a size in [%" PRIu64 ", %" PRIu64 "] bytes "
                     "(digits with an optional K, M, G or T suffix)", cmd, opt, text, min, max);
}

int qf_cli_parse_size(const char *cmd, const char *opt, const char *text,
                      uint64_t min, uint64_t max, uint64_t *out)
{
    assert(cmd && opt && text && out && min <= max);
    const char *p = text;
    if (!isdigit((unsigned char)*p)) /* no sign: a negative size is always a mistake */
        return bad_size(cmd, opt, text, min, max);
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE)
        return bad_size(cmd, opt, text, min, max);

    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case '\0': break;
    default: return bad_size(cmd, opt, text, min, max);
    }
    if (shift) {
        end++;
        if (strcmp(end, "iB") == 0)
            end += 2;
    }
    if (*end != '\0')
        return bad_size(cmd, opt, text, min, max);
    if (shift && v > (UINT64_MAX >> shift)) /* the suffix would overflow */
        return bad_size(cmd, opt, text, min, max);
    uint64_t bytes = (uint64_t)v << shift;
    if (bytes < min || bytes > max)
        return bad_size(cmd, opt, text, min, max);
    *out = bytes;
    return 0;
}

int qf_cli_reject_option(const char *cmd, int rc, int argc, char *const argv[])
{
    assert(cmd && argv && argc >= 1);
    /* getopt has already stepped past the offending word in every case but an unknown letter
     * inside a cluster ("-hx"), where optopt still names the letter. */
    int idx = optind - 1;
    if (idx < 1)
        idx = 1;
    if (idx >= argc)
        idx = argc - 1;
    const char *word = argv[idx];
    char shortopt[3] = { '-', (char)optopt, '\0' };
    int is_long = strncmp(word, "--", 2) == 0;
    size_t len = strlen(word);
    const char *eq = strchr(word, '=');
    if (!is_long && optopt > 0 && optopt < 128) {
        word = shortopt;
        len = 2;
    } else if (is_long && eq) {
        len = (size_t)(eq - word); /* name the option, not the value glued to it */
    }
    int n = len > 200 ? 200 : (int)len;

    if (rc == ':')
        return qf_errorf(QF_EUSAGE, "%s: option '%.*s' needs a value (see 'qfleet %s --help')",
                         cmd, n, word, cmd);
    if (is_long && eq && optopt != 0) /* getopt knew the option: it takes no value */
        return qf_errorf(QF_EUSAGE, "%s: option '%.*s' takes no value (see 'qfleet %s --help')",
                         cmd, n, word, cmd);
    return qf_errorf(QF_EUSAGE, "%s: unknown option '%.*s' (see 'qfleet %s --help')",
                     cmd, n, word, cmd);
}
