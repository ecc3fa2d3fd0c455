/* driver: a standalone runner for LLVMFuzzerTestOneInput when libFuzzer is not
 * available. Runs every file of the corpus directories given, then random mutations
 * (byte flips, inserts, deletes, splices of two corpus entries, JSON tokens) until the
 * time budget ends:  fuzz_protocol [-seconds N] [-seed S] DIR...  Single thread. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 8192
#define MAX_CORPUS 4096

static uint8_t *corpus[MAX_CORPUS];
static size_t corpus_len[MAX_CORPUS], n_corpus;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void load_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) && n_corpus < MAX_CORPUS;) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t *buf = malloc(FUZZ_MAX_INPUT);
        size_t n = buf ? fread(buf, 1, FUZZ_MAX_INPUT, f) : 0;
        fclose(f);
        if (!buf)
            continue;
        corpus[n_corpus] = buf;
        corpus_len[n_corpus++] = n;
    }
    closedir(d);
}

static const char *const tokens[] = {
    "{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1", "1e999", "0.5", "\"*\"",
    "\"type\"", "\"subscribe\"", "\"unsubscribe\"", "\"join_session\"", "\"rooms\"",
    "\"since\"", "\"epoch\"", "\"fields\"", "\"max_rate\"", "\"id\"", "\\u0000", "\xc3\x28",
};

static size_t mutate(uint8_t *buf, size_t len)
{
    int rounds = 1 + (int)(next_rand() % 4);
    while (rounds--) {
        size_t pos = len ? next_rand() % (len + 1) : 0;
        switch (next_rand() % 5) {
        case 0:
            if (len)
                buf[pos % len] ^= (uint8_t)(1u << (next_rand() % 8));
            break;
        case 1:
            if (len < FUZZ_MAX_INPUT)
                memmove(buf + pos + 1, buf + pos, len - pos), buf[pos] = (uint8_t)next_rand(), len++;
            break;
        case 2:
            if (len) {
                size_t n = 1 + next_rand() % (len - pos % len);
                pos %= len;
                memmove(buf + pos, buf + pos + n, len - pos - n);
                len -= n;
            }
            break;
        case 3: {
            const char *t = tokens[next_rand() % (sizeof tokens / sizeof tokens[0])];
            size_t n = strlen(t);
            if (len + n <= FUZZ_MAX_INPUT) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, t, n);
                len += n;
            }
            break;
        }
        default:
            if (n_corpus) {
                size_t k = next_rand() % n_corpus, n = corpus_len[k] / 2;
                if (len + n <= FUZZ_MAX_INPUT) {
                    memmove(buf + pos + n, buf + pos, len - pos);
                    memcpy(buf + pos, corpus[k], n);
                    len += n;
                }
            }
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    double seconds = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "-seed") && i + 1 < argc)
            rng = strtoull(argv[++i], NULL, 0) | 1;
        else
            load_dir(argv[i]);
    }
    for (size_t i = 0; i < n_corpus; i++)
        LLVMFuzzerTestOneInput(corpus[i], corpus_len[i]);
    static uint8_t buf[FUZZ_MAX_INPUT];
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long runs = 0;
    for (;; runs++) {
        if ((runs & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
                break;
        }
        size_t len = 0;
        if (n_corpus) {
            size_t k = next_rand() % n_corpus;
            memcpy(buf, corpus[k], corpus_len[k]);
            len = corpus_len[k];
        }
        len = mutate(buf, len);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz_protocol: %zu corpus inputs, %lu mutated runs, no crash\n", n_corpus, runs);
    for (size_t i = 0; i < n_corpus; i++)
        free(corpus[i]);
    return 0;
}
