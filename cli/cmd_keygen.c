/* cmd_keygen.c - `qfleet keygen`: a CURVE key pair for a coordinator, an agent or a client.
 *
 * Writes BASE.secret (mode 0600) and BASE.pub through qf_curve_keygen (temp file + rename,
 * never overwriting unless --force), prints where they went and the public key's fingerprint,
 * the name the coordinator's log uses for it. `--fingerprint FILE` prints the fingerprint of
 * an existing key file, to match a refused key in the log with a file. Run once per machine
 * at enrolment (docs/security.md): not hot.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_curve.h"
#include "qf_err.h"

static void usage(FILE *out)
{
    fputs("usage: qfleet keygen BASE [--force]\n"
          "       qfleet keygen --fingerprint FILE\n"
          "\n"
          "Make a CURVE key pair: BASE.secret (mode 0600, stays on this machine) and BASE.pub\n"
          "(copied to the coordinator's --allow folder to enrol this machine, or, for the\n"
          "coordinator's own pair, to every agent and client as --server-key).\n"
          "See docs/security.md.\n"
          "\n"
          "  --force             replace existing BASE.secret / BASE.pub\n"
          "  --fingerprint FILE  print the fingerprint of a .pub or .secret file\n"
          "  -h, --help          this help\n", out);
}

int qf_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' },
        { "fingerprint", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool force = false;
    const char *fp_file = NULL;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'f': force = true; break;
        case 'p': fp_file = optarg; break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default:  qf_cli_reject_option("keygen", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (fp_file) {
        if (optind < argc || force) {
            qf_errorf(QF_EUSAGE, "keygen: --fingerprint FILE takes nothing else (see qfleet "
                      "keygen --help)");
            return QF_EXIT_USAGE;
        }
        char z85[QF_CURVE_Z85_LEN + 1], fp[QF_CURVE_FP_SIZE];
        if (qf_curve_read_public(fp_file, z85) != 0)
            return QF_EXIT_FAILURE;
        qf_curve_fingerprint_z85(z85, fp);
        printf("%s  %s\n", fp, fp_file);
        return QF_EXIT_OK;
    }
    if (optind + 1 != argc || !argv[optind][0]) {
        qf_errorf(QF_EUSAGE, "keygen: %s (see qfleet keygen --help)",
                  optind >= argc ? "BASE is required, e.g. qfleet keygen keys/pi5-01"
                                 : "exactly one BASE");
        return QF_EXIT_USAGE;
    }
    const char *base = argv[optind];
    qf_curve_keypair kp;
    if (qf_curve_keygen(base, force, &kp) != 0)
        return QF_EXIT_FAILURE;
    char fp[QF_CURVE_FP_SIZE];
    qf_curve_fingerprint_z85(kp.public_z85, fp);
    printf("wrote %s.secret (keep it here, mode 0600) and %s.pub\n"
           "fingerprint %s\n", base, base, fp);
    return QF_EXIT_OK;
}
