/* log: leveled logging to stderr; any thread.
 *
 * Each line is formatted into a local buffer and written with one write(2), so lines
 * from the MQTT thread and the service thread never interleave. The rate limiter is a
 * small mutex-guarded table of (key hash, last time); collisions only make it stricter. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

static int g_level = TB_LOG_INFO;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(enum tb_log_level level) { __atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED); }
enum tb_log_level log_get_level(void) { return (enum tb_log_level)__atomic_load_n(&g_level, __ATOMIC_RELAXED); }

int log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return TB_LOG_WARN;
    return -1;
}

uint64_t tb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t tb_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void log_write(enum tb_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level < __atomic_load_n(&g_level, __ATOMIC_RELAXED))
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

#define RL_SLOTS 256
static struct { uint64_t hash; uint64_t at; } rl_table[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;

bool log_ratelimit_allow(const char *key, uint64_t interval_ms)
{
    uint64_t h = tb_hash_str(key);
    uint64_t now = tb_now_ms() + interval_ms; /* never 0, so a fresh slot always allows */
    bool allow;
    pthread_mutex_lock(&rl_lock);
    unsigned slot = (unsigned)(h % RL_SLOTS);
    allow = rl_table[slot].hash != h || now - rl_table[slot].at >= interval_ms;
    if (allow) {
        rl_table[slot].hash = h;
        rl_table[slot].at = now;
    }
    pthread_mutex_unlock(&rl_lock);
    return allow;
}

bool log_ratelimit_allow_capped(const char *family, const char *key, uint64_t interval_ms, unsigned burst)
{
    static struct { uint64_t hash, window; unsigned used; } budgets[8];
    uint64_t h = tb_hash_str(family);
    uint64_t window = tb_now_ms() / 10000;
    bool ok;
    pthread_mutex_lock(&rl_lock);
    unsigned slot = (unsigned)(h % 8);
    if (budgets[slot].hash != h || budgets[slot].window != window) {
        budgets[slot].hash = h;
        budgets[slot].window = window;
        budgets[slot].used = 0;
    }
    ok = budgets[slot].used < burst;
    pthread_mutex_unlock(&rl_lock);
    if (!ok || !log_ratelimit_allow(key, interval_ms))
        return false;
    pthread_mutex_lock(&rl_lock);
    budgets[slot].used++;
    pthread_mutex_unlock(&rl_lock);
    return true;
}
