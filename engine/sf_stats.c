/*
 * Experiment statistics: per-arm rates, the two-proportion z-test against
 * the control, the 95% confidence interval of the difference, and the
 * sample ratio mismatch check (chi-square against the configured split).
 */

#include <math.h>
#include <string.h>

#include "storefront.h"


double
sf_stats_normal_cdf(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}


/* Regularized upper incomplete gamma Q(a, x) (Numerical Recipes). */
static double
sf_stats_gamma_q(double a, double x)
{
    int     i;
    double  sum, term, ap, b, c, d, h, an, del;

    if (x <= 0) {
        return 1;
    }

    if (x < a + 1) {
        /* series for P, then Q = 1 - P */
        ap = a;
        sum = term = 1 / a;
        for (i = 0; i < 1000; i++) {
            ap += 1;
            term *= x / ap;
            sum += term;
            if (fabs(term) < fabs(sum) * 1e-15) {
                break;
            }
        }
        return 1 - sum * exp(-x + a * log(x) - lgamma(a));
    }

    /* continued fraction for Q */
    b = x + 1 - a;
    c = 1 / 1e-300;
    d = 1 / b;
    h = d;
    for (i = 1; i < 1000; i++) {
        an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < 1e-300) {
            d = 1e-300;
        }
        c = b + an / c;
        if (fabs(c) < 1e-300) {
            c = 1e-300;
        }
        d = 1 / d;
        del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) {
            break;
        }
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}


double
sf_stats_chi2_sf(double x, int dof)
{
    if (dof <= 0) {
        return 1;
    }
    return sf_stats_gamma_q(dof / 2.0, x / 2.0);
}


void
sf_stats_compute(const sf_arm_counts *arms, size_t n, const double *weights,
    sf_arm_stats *out, sf_experiment_stats *summary)
{
    size_t   i;
    double   p0, p1, n0, n1, pooled, se, se_diff, expected, w, total_w;

    memset(summary, 0, sizeof(*summary));
    summary->arms = n;
    summary->enough_data = n >= 2;

    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].c = arms[i];
        summary->users += arms[i].users;

        if (arms[i].users) {
            out[i].conversion_rate = (double) arms[i].converters
                                     / arms[i].users;
            out[i].revenue_per_user = arms[i].revenue / arms[i].users;
        }
        if (arms[i].orders) {
            out[i].average_order_value = arms[i].revenue / arms[i].orders;
            out[i].return_rate = (double) arms[i].returns / arms[i].orders;
        }
        if (arms[i].users < SF_STATS_MIN_USERS) {
            summary->enough_data = 0;
        }
    }

    /* each treatment against the control */
    n0 = n ? (double) arms[0].users : 0;
    p0 = n ? out[0].conversion_rate : 0;

    for (i = 1; i < n; i++) {
        n1 = (double) arms[i].users;
        p1 = out[i].conversion_rate;

        if (n0 == 0 || n1 == 0) {
            out[i].p_value = 1;
            continue;
        }

        out[i].lift = p0 > 0 ? (p1 - p0) / p0 : 0;

        pooled = (double) (arms[0].converters + arms[i].converters)
                 / (n0 + n1);
        se = sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1));
        out[i].z = se > 0 ? (p1 - p0) / se : 0;
        out[i].p_value = se > 0 ? 2 * (1 - sf_stats_normal_cdf(fabs(out[i].z)))
                                : 1;

        se_diff = sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1);
        out[i].ci_low = (p1 - p0) - 1.959963984540054 * se_diff;
        out[i].ci_high = (p1 - p0) + 1.959963984540054 * se_diff;

        out[i].significant = summary->enough_data && out[i].p_value < 0.05;
    }

    /* sample ratio mismatch: observed users against the split */
    total_w = 0;
    for (i = 0; i < n; i++) {
        total_w += weights ? weights[i] : 1;
    }

    summary->srm_chi2 = 0;
    for (i = 0; i < n && summary->users > 0; i++) {
        w = (weights ? weights[i] : 1) / total_w;
        expected = summary->users * w;
        if (expected > 0) {
            summary->srm_chi2 += (arms[i].users - expected)
                                 * (arms[i].users - expected) / expected;
        }
    }

    summary->srm_p = sf_stats_chi2_sf(summary->srm_chi2, (int) n - 1);
    summary->srm_alarm = summary->users > 0 && n > 1
                         && summary->srm_p < SF_SRM_ALARM_P;
}
