/* suggest: "did you mean" hints for misspelt names. Pure; any thread.
 *
 * Config keys and enum values are short, so a plain O(n*m) optimal-string-alignment
 * distance (Levenshtein plus adjacent transposition, the commonest typo) is plenty. */
#include "suggest.h"

#include <stdlib.h>
#include <string.h>

#define MAXLEN 64

static int min3(int a, int b, int c)
{
    int m = a < b ? a : b;
    return m < c ? m : c;
}

int suggest_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXLEN || m >= MAXLEN)
        return MAXLEN;
    int d[MAXLEN][MAXLEN];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    }
    return d[n][m];
}

const char *suggest_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < n; i++) {
        int d = suggest_distance(word, cands[i]);
        /* A 1- or 2-letter word is within 2 of everything short; demand real overlap. */
        if (d < best_d && (size_t)d < strlen(word)) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}
