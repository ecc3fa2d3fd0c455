/* prng: splitmix64 seeding + xoshiro256** generation (see prng.h). Pure. */
#include "prng.h"

#include <math.h>

uint64_t prng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void prng_seed(struct prng *p, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    prng_splitmix64(&x);
    for (int i = 0; i < 4; i++)
        p->s[i] = prng_splitmix64(&x);
    /* xoshiro must not start from all zeros; splitmix64 cannot produce four in a row,
     * but say so rather than rely on it silently. */
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t prng_next(struct prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double prng_uniform(struct prng *p)
{
    return (double)(prng_next(p) >> 11) * 0x1.0p-53;
}

double prng_range(struct prng *p, double lo, double hi)
{
    return lo + (hi - lo) * prng_uniform(p);
}

uint32_t prng_below(struct prng *p, uint32_t n)
{
    return (uint32_t)(((prng_next(p) >> 32) * (uint64_t)n) >> 32);
}

double prng_normal(struct prng *p)
{
    double u1 = prng_uniform(p);
    double u2 = prng_uniform(p);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int prng_chance(struct prng *p, double prob)
{
    return prng_uniform(p) < prob;
}
