/* suggest: "did you mean" hints for misspelt names. Pure; any thread. */
#ifndef TB_SUGGEST_H
#define TB_SUGGEST_H

#include <stddef.h>

/* Optimal-string-alignment (Damerau-Levenshtein) distance, case-sensitive. */
int suggest_distance(const char *a, const char *b);

/* The candidate closest to 'word' within distance 2 (first on ties), or NULL. */
const char *suggest_closest(const char *word, const char *const *cands, size_t n);

#endif
