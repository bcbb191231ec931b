/* synth.c - STUB: being written. */
#include "qf_synth.h"
#include "qf_rng.h"
qf_synth_params qf_synth_defaults(qf_synth_dist dist, uint64_t seed)
{ qf_synth_params p = { .dist = dist, .stddev = 0.02, .student_nu = 5, .outlier_channels = 4, .outlier_scale = 20, .seed = seed }; return p; }
int qf_synth_dist_from_name(const char *name, qf_synth_dist *out) { (void)name; *out = QF_SYNTH_GAUSSIAN; return 0; }
const char *qf_synth_dist_name(qf_synth_dist dist) { (void)dist; return "gaussian"; }
int qf_synth_fill(const qf_synth_params *p, float *w, int64_t nrows, int64_t ncols)
{ qf_rng r; qf_rng_seed(&r, p->seed); for (int64_t i = 0; i < nrows * ncols; i++) w[i] = (float)(p->stddev * qf_rng_normal(&r)); return 0; }
