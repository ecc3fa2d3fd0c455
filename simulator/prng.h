/* prng: the simulator's own deterministic random numbers.
 *
 * Why: `--seed` must reproduce the same values on every run and every libc, so the
 * simulator cannot use rand()/random(). xoshiro256** (Blackman & Vigna) is small, fast
 * and good; its 256-bit state is filled from one 64-bit seed with splitmix64, which is
 * also how each vehicle gets an independent stream (seed, vehicle index) -> state.
 * Pure; no global state; any thread may use its own struct prng. */
#ifndef TELESIM_PRNG_H
#define TELESIM_PRNG_H

#include <stdint.h>

struct prng {
    uint64_t s[4];
};

/* One splitmix64 step: advances *x and returns a well-mixed 64-bit value. */
uint64_t prng_splitmix64(uint64_t *x);

/* Seeds the generator from (seed, stream): different streams give unrelated sequences. */
void prng_seed(struct prng *p, uint64_t seed, uint64_t stream);

uint64_t prng_next(struct prng *p);
/* Uniform in [0, 1). */
double prng_uniform(struct prng *p);
/* Uniform in [lo, hi). */
double prng_range(struct prng *p, double lo, double hi);
/* Uniform integer in [0, n), n > 0. */
uint32_t prng_below(struct prng *p, uint32_t n);
/* Standard normal (mean 0, deviation 1), Box-Muller. */
double prng_normal(struct prng *p);
/* True with probability prob. */
int prng_chance(struct prng *p, double prob);

#endif
