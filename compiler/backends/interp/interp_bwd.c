/* interp_bwd.c: the reference backward pass (interp_attention_backward in
 * interp.h), the oracle for backward kernels.
 *
 * In: the program and rt_args of a forward run, and rt_grad (dL/do,
 * optionally dL/dlse).  Out: dq, dk, dv for o = softmax(s restricted to the
 * mask) v, s = scale * q k^T, exactly as
 *
 *   P_ij    = exp(s_ij - lse_i)         allowed (i, j), else 0
 *   dv_j    = sum_i P_ij do_i
 *   dP_ij   = do_i . v_j
 *   Delta_i = do_i . o_i
 *   dS_ij   = P_ij (dP_ij - Delta_i + dlse_i)
 *   dq_i    = scale * sum_j dS_ij k_j,    dk_j = scale * sum_i dS_ij q_i
 *
 * in double.  The mask comes from the interpreter's own per-(h, i, j)
 * evaluation (interp_mask_rows), so topk selects with the forward's scores
 * and no gradient flows through the selection.  o and lse are recomputed
 * here in double from q, k and v, not read from the forward.  A row with no
 * allowed key contributes nothing.  GQA: a key/value head's gradients sum
 * over the query heads that share it.  Work is split over (batch, key/value
 * head), each task owning its dk and dv rows and its heads' dq rows (no
 * atomics); memory is O(64 Lk + Lk D) per task, never Lq x Lk.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "interp.h"
#include "threads.h"

#define BWD_ROWS 64 /* mask rows evaluated at once (blocks{topk} shares) */

typedef struct bwd_job {
  const ir_program *p;
  const rt_args *a;
  const rt_grad *g;
  double scale;
  atomic_int failed;  /* a task failed: its message is in err */
  char err[512];
  atomic_flag err_taken;
  rt_status st;
  /* with score E: gradients of the float inputs, summed over tasks */
  int n_in;
  int64_t *in_len;
  double **dsum;       /* per input, NULL unless asked for */
  pthread_mutex_t mu;
} bwd_job;

static float *at(const rt_tensor *t, int64_t b, int64_t h, int64_t r) {
  return t->data + b * t->sb + h * t->sh + r * t->sl;
}

static double dotf(const float *x, const float *y, int64_t D) {
  double s = 0;
  for (int64_t d = 0; d < D; d++) s += (double)x[d] * (double)y[d];
  return s;
}

static void fail_job(bwd_job *J, rt_status st, const char *msg) {
  if (!atomic_flag_test_and_set(&J->err_taken)) {
    J->st = st;
    snprintf(J->err, sizeof J->err, "%s", msg);
  }
  atomic_store(&J->failed, 1);
}

/* One (batch, key/value head): every query row of its query heads. */
static void bwd_task(void *arg, int64_t task, int worker) {
  (void)worker;
  bwd_job *J = arg;
  const rt_args *a = J->a;
  const rt_grad *g = J->g;
  int64_t D = a->D, Lk = a->Lk, Lq = a->Lq, grp = a->H / a->Hkv;
  int64_t b = task / a->Hkv, hk = task % a->Hkv;
  uint8_t *mask = malloc((size_t)(BWD_ROWS * (Lk > 0 ? Lk : 1)));
  double *s = malloc(sizeof *s * (size_t)(Lk > 0 ? Lk : 1));
  double *o = malloc(sizeof *o * (size_t)D), *dq = malloc(sizeof *dq * (size_t)D);
  double *dk = calloc((size_t)(Lk * D > 0 ? Lk * D : 1), sizeof *dk);
  double *dv = calloc((size_t)(Lk * D > 0 ? Lk * D : 1), sizeof *dv);
  double *dE = malloc(sizeof *dE * (size_t)(Lk > 0 ? Lk : 1));
  interp_scorer *sc = J->p->score ? interp_scorer_new(J->p, a) : NULL;
  double **gin = J->dsum ? calloc((size_t)J->n_in, sizeof *gin) : NULL;
  bool gin_ok = !J->dsum || gin;
  for (int x = 0; gin && x < J->n_in; x++)
    if (J->dsum[x] && !(gin[x] = calloc((size_t)(J->in_len[x] ? J->in_len[x] : 1),
                                        sizeof *gin[x])))
      gin_ok = false;
  if (!mask || !s || !o || !dq || !dk || !dv || !dE || (J->p->score && !sc) || !gin_ok) {
    fail_job(J, RT_ENOMEM, "out of memory");
    goto done;
  }
  for (int64_t h = hk * grp; h < (hk + 1) * grp; h++) {
    for (int64_t r0 = 0; r0 < Lq; r0 += BWD_ROWS) {
      if (atomic_load(&J->failed)) goto done;
      int64_t n = r0 + BWD_ROWS < Lq ? BWD_ROWS : Lq - r0;
      char err[512] = "";
      rt_status st = interp_mask_rows(J->p, a, b, h, r0, n, mask, err, sizeof err);
      if (st != RT_OK) {
        fail_job(J, st, err);
        goto done;
      }
      for (int64_t t = 0; t < n; t++) {
        const uint8_t *mrow = mask + t * Lk;
        int64_t r = r0 + t;
        const float *q = at(&a->q, b, h, r), *dout = at(&g->dout, b, h, r);
        float *dqo = at(&g->dq, b, h, r);
        /* forward statistics of the row, in double */
        double m = -INFINITY, sum = 0;
        int64_t nk = 0;
        for (int64_t j = 0; j < Lk; j++) {
          if (!mrow[j]) continue;
          s[j] = J->scale * dotf(q, at(&a->k, b, hk, j), D);
          dE[j] = 1;
          if (sc) { /* with score E: E in place of s, dS scaled by dE/ds */
            double sv = s[j];
            rt_status st2 = interp_score(sc, b, h, r, j, sv, &s[j], &dE[j]);
            if (st2 != RT_OK) {
              fail_job(J, st2, interp_scorer_error(sc));
              goto done;
            }
          }
          /* a NaN score makes the row NaN (IEEE), as in the forward */
          if (nk++ == 0 || isnan(s[j]) || s[j] > m) m = s[j];
        }
        for (int64_t d = 0; d < D; d++) o[d] = 0, dq[d] = 0;
        if (m == -INFINITY) nk = 0; /* every score -inf: an empty row */
        if (nk == 0) {
          for (int64_t d = 0; d < D; d++) dqo[d] = 0.0f;
          continue;
        }
        for (int64_t j = 0; j < Lk; j++) {
          if (!mrow[j]) continue;
          double e = exp(s[j] - m);
          sum += e;
          const float *v = at(&a->v, b, hk, j);
          for (int64_t d = 0; d < D; d++) o[d] += e * (double)v[d];
        }
        double lse = m + log(sum), delta = 0;
        for (int64_t d = 0; d < D; d++) {
          o[d] /= sum;
          delta += (double)dout[d] * o[d];
        }
        double dl = g->dlse ? (double)g->dlse[b * a->lse_sb + h * a->lse_sh + r] : 0.0;
        for (int64_t j = 0; j < Lk; j++) {
          if (!mrow[j]) continue;
          double P = exp(s[j] - lse);
          const float *k = at(&a->k, b, hk, j), *v = at(&a->v, b, hk, j);
          double dS = P * (dotf(dout, v, D) - delta + dl);
          if (gin && P != 0) { /* dL/dE_ij = dS: through E to the inputs */
            double sv = J->scale * dotf(q, k, D);
            rt_status st2 = interp_score_grad(sc, b, h, r, j, sv, dS, gin);
            if (st2 != RT_OK) {
              fail_job(J, st2, interp_scorer_error(sc));
              goto done;
            }
          }
          dS *= dE[j];
          double *dkj = dk + j * D, *dvj = dv + j * D;
          for (int64_t d = 0; d < D; d++) {
            dvj[d] += P * (double)dout[d];
            dkj[d] += J->scale * dS * (double)q[d];
            dq[d] += J->scale * dS * (double)k[d];
          }
        }
        for (int64_t d = 0; d < D; d++) dqo[d] = (float)dq[d];
      }
    }
  }
  for (int64_t j = 0; j < Lk; j++) {
    float *dko = at(&g->dk, b, hk, j), *dvo = at(&g->dv, b, hk, j);
    for (int64_t d = 0; d < D; d++)
      dko[d] = (float)dk[j * D + d], dvo[d] = (float)dv[j * D + d];
  }
  if (gin) {
    pthread_mutex_lock(&J->mu);
    for (int x = 0; x < J->n_in; x++)
      for (int64_t e = 0; gin[x] && e < J->in_len[x]; e++) J->dsum[x][e] += gin[x][e];
    pthread_mutex_unlock(&J->mu);
  }
done:
  free(mask), free(s), free(o), free(dq), free(dk), free(dv), free(dE);
  for (int x = 0; gin && x < J->n_in; x++) free(gin[x]);
  free(gin);
  interp_scorer_free(sc);
}

rt_status interp_attention_backward(const ir_program *p, const rt_args *a,
                                    const rt_grad *g, char *err,
                                    size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!p || !a || !g)
    return rt_errf(err, errlen, RT_EINVAL, "NULL program, arguments or gradients");
  if (a->paged)
    return rt_errf(err, errlen, RT_EUNSUPPORTED,
                   "the backward pass does not take a paged KV cache");
  if (a->B < 0 || a->H < 1 || a->Hkv < 1 || a->H % a->Hkv != 0 || a->Lq < 0 ||
      a->Lk < 0 || a->D < 1)
    return rt_errf(err, errlen, RT_EINVAL,
                   "bad shape: B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld",
                   (long long)a->B, (long long)a->H, (long long)a->Hkv,
                   (long long)a->Lq, (long long)a->Lk, (long long)a->D);
  if (!a->q.data || !a->k.data || !a->v.data || !g->dout.data || !g->dq.data ||
      !g->dk.data || !g->dv.data)
    return rt_errf(err, errlen, RT_EINVAL, "a tensor is NULL");
  if ((uint64_t)a->Lk > SIZE_MAX / BWD_ROWS / sizeof(double) / (uint64_t)a->D)
    return rt_errf(err, errlen, RT_ERANGE, "Lk = %lld is too large",
                   (long long)a->Lk);
  if (a->B == 0 || a->Lq == 0) return RT_OK;
  bwd_job J = {.p = p, .a = a, .g = g, .st = RT_OK};
  J.scale = a->scale != 0 ? (double)a->scale : 1.0 / sqrt((double)a->D);
  atomic_init(&J.failed, 0);
  atomic_flag_clear(&J.err_taken);
  int64_t tasks = a->B * a->Hkv;
  rt_status st = RT_OK;
  const int64_t sz[6] = {a->B, a->H, a->Hkv, a->Lq, a->Lk, a->D};
  pthread_mutex_init(&J.mu, NULL);
  J.n_in = p->n_inputs;
  if (g->dinputs && p->score && p->n_inputs > 0) {
    J.in_len = calloc((size_t)p->n_inputs, sizeof *J.in_len);
    J.dsum = calloc((size_t)p->n_inputs, sizeof *J.dsum);
    if (!J.in_len || !J.dsum) st = RT_ENOMEM;
    for (int x = 0; st == RT_OK && x < p->n_inputs; x++) {
      if (!g->dinputs[x] || !p->inputs[x].is_float) continue;
      J.in_len[x] = ir_input_len(p, x, sz);
      if (J.in_len[x] < 0 ||
          !(J.dsum[x] = calloc((size_t)(J.in_len[x] ? J.in_len[x] : 1), sizeof **J.dsum)))
        st = RT_ENOMEM;
    }
  }
  th_pool *pool = st == RT_OK ? th_new(a->threads > 0 ? a->threads : 0) : NULL;
  if (!pool) st = RT_ENOMEM;
  if (pool) th_for(pool, tasks, bwd_task, &J);
  th_free(pool);
  if (st == RT_OK && atomic_load(&J.failed)) st = J.st;
  for (int x = 0; st == RT_OK && J.dsum && x < J.n_in; x++)
    for (int64_t e = 0; J.dsum[x] && e < J.in_len[x]; e++)
      g->dinputs[x][e] = (float)J.dsum[x][e];
  for (int x = 0; J.dsum && x < J.n_in; x++) free(J.dsum[x]);
  free(J.dsum), free(J.in_len);
  pthread_mutex_destroy(&J.mu);
  if (st == RT_ENOMEM && !atomic_load(&J.failed))
    return rt_errf(err, errlen, RT_ENOMEM, "out of memory");
  if (st != RT_OK) return rt_errf(err, errlen, st, "%s", J.err);
  return RT_OK;
}
