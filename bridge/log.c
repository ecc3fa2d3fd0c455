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
static int g_format = TB_LOG_TEXT;
static int g_pinned_level, g_pinned_format;     /* set by the command line */
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_lower[] = {"debug", "info", "warn", "error"};

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

void log_set_format(enum tb_log_format format) { __atomic_store_n(&g_format, (int)format, __ATOMIC_RELAXED); }

int log_format_parse(const char *name)
{
    static const char *const names[] = {"text", "json", "logfmt"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_pin_level(enum tb_log_level level)
{
    log_set_level(level);
    __atomic_store_n(&g_pinned_level, 1, __ATOMIC_RELAXED);
}

void log_pin_format(enum tb_log_format format)
{
    log_set_format(format);
    __atomic_store_n(&g_pinned_format, 1, __ATOMIC_RELAXED);
}

void log_apply_config(enum tb_log_level level, enum tb_log_format format)
{
    if (!__atomic_load_n(&g_pinned_level, __ATOMIC_RELAXED))
        log_set_level(level);
    if (!__atomic_load_n(&g_pinned_format, __ATOMIC_RELAXED))
        log_set_format(format);
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

/* Appends text to line[*n] as the inside of a JSON string (json) or of a logfmt quoted
 * value (logfmt: the same escapes). Control characters become \uXXXX; bytes >= 0x80 pass
 * (the message is UTF-8 or, for foreign text, already sanitized by the caller). */
static void append_escaped(char *line, size_t cap, size_t *n, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p && *n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            line[(*n)++] = '\\';
            line[(*n)++] = (char)*p;
        } else if (*p == '\n') {
            line[(*n)++] = '\\';
            line[(*n)++] = 'n';
        } else if (*p < 0x20) {
            *n += (size_t)snprintf(line + *n, cap - *n, "\\u%04x", *p);
        } else {
            line[(*n)++] = (char)*p;
        }
    }
}

static void append(char *line, size_t cap, size_t *n, const char *text)
{
    size_t len = strlen(text);
    if (len > cap - 2 - *n)
        len = cap - 2 - *n;
    memcpy(line + *n, text, len);
    *n += len;
}

void log_write(enum tb_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level < __atomic_load_n(&g_level, __ATOMIC_RELAXED))
        return;
    char msg[2048], line[4608], ts[96];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = 0;
    switch (__atomic_load_n(&g_format, __ATOMIC_RELAXED)) {
    case TB_LOG_JSON:
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"", ts, level_lower[level]);
        append_escaped(line, sizeof line, &n, module);
        append(line, sizeof line, &n, "\",\"msg\":\"");
        append_escaped(line, sizeof line, &n, msg);
        append(line, sizeof line, &n, "\"}");
        break;
    case TB_LOG_LOGFMT:
        n = (size_t)snprintf(line, sizeof line, "ts=%s level=%s module=", ts, level_lower[level]);
        append_escaped(line, sizeof line, &n, module);
        append(line, sizeof line, &n, " msg=\"");
        append_escaped(line, sizeof line, &n, msg);
        append(line, sizeof line, &n, "\"");
        break;
    default:
        n = (size_t)snprintf(line, sizeof line, "%s %-5s %s: ", ts, level_names[level], module);
        append(line, sizeof line, &n, msg);
        break;
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

const char *log_thousands(uint64_t n, char *buf, size_t len)
{
    char digits[24];
    int d = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < d && o + 2 < len; i++) {
        if (i && (d - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o < len ? o : len - 1] = '\0';
    return buf;
}

void log_budget_flush(struct log_budget *b, uint64_t now_ms, uint64_t window_ms, const char *module,
                      const char *what)
{
    if (now_ms - b->window_start_ms < window_ms)
        return;
    if (b->suppressed) {
        char num[32];
        log_write(TB_LOG_INFO, module, "... %s more %s in %llu s", log_thousands(b->suppressed, num, sizeof num),
                  what, (unsigned long long)(window_ms / 1000));
    }
    b->window_start_ms = now_ms;
    b->used = 0;
    b->suppressed = 0;
}

bool log_budget_take(struct log_budget *b, uint64_t now_ms, unsigned burst, uint64_t window_ms,
                     const char *module, const char *what)
{
    log_budget_flush(b, now_ms, window_ms, module, what);
    if (b->used < burst) {
        b->used++;
        return true;
    }
    b->suppressed++;
    return false;
}

#define RL_SLOTS 256
static struct { uint64_t hash; uint64_t at; uint64_t suppressed; uint64_t allowed_ms; } rl_table[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;

/* "... 1,234 more 'non-json' lines in the last 60 s": what a limiter held back since the
 * last line it let through. */
static void write_summary(const char *what, uint64_t n, uint64_t since_ms)
{
    if (!n)
        return;
    char num[32];
    log_write(TB_LOG_INFO, "log", "... %s more '%s' lines in the last %llu s", log_thousands(n, num, sizeof num),
              what, (unsigned long long)((tb_now_ms() - since_ms + 999) / 1000));
}

/* The per-key limiter; *held / *since: what it held back for this key since its last line. */
static bool ratelimit_key(const char *key, uint64_t interval_ms, uint64_t *held, uint64_t *since)
{
    uint64_t h = tb_hash_str(key);
    uint64_t mono = tb_now_ms();
    uint64_t now = mono + interval_ms; /* never 0, so a fresh slot always allows */
    bool allow;
    *held = 0;
    pthread_mutex_lock(&rl_lock);
    unsigned slot = (unsigned)(h % RL_SLOTS);
    bool same = rl_table[slot].hash == h;
    allow = !same || now - rl_table[slot].at >= interval_ms;
    if (allow) {
        if (same) {
            *held = rl_table[slot].suppressed;
            *since = rl_table[slot].allowed_ms;
        }
        rl_table[slot].hash = h;
        rl_table[slot].at = now;
        rl_table[slot].suppressed = 0;
        rl_table[slot].allowed_ms = mono;
    } else {
        rl_table[slot].suppressed++;
    }
    pthread_mutex_unlock(&rl_lock);
    return allow;
}

bool log_ratelimit_allow(const char *key, uint64_t interval_ms)
{
    uint64_t held, since;
    bool allow = ratelimit_key(key, interval_ms, &held, &since);
    if (allow)
        write_summary(key, held, since);
    return allow;
}

bool log_ratelimit_allow_capped(const char *family, const char *key, uint64_t interval_ms, unsigned burst)
{
    static struct { uint64_t hash, window; unsigned used; uint64_t suppressed, allowed_ms; } budgets[8];
    uint64_t h = tb_hash_str(family);
    uint64_t mono = tb_now_ms(), window = mono / 10000;
    bool ok;
    pthread_mutex_lock(&rl_lock);
    unsigned slot = (unsigned)(h % 8);
    if (budgets[slot].hash != h) {
        budgets[slot].hash = h;
        budgets[slot].suppressed = 0;
        budgets[slot].allowed_ms = mono;
    }
    if (budgets[slot].window != window) {
        budgets[slot].window = window;
        budgets[slot].used = 0;
    }
    ok = budgets[slot].used < burst;
    if (!ok)
        budgets[slot].suppressed++;
    pthread_mutex_unlock(&rl_lock);
    uint64_t held_key, since_key;
    if (!ok)
        return false;
    if (!ratelimit_key(key, interval_ms, &held_key, &since_key)) {
        pthread_mutex_lock(&rl_lock);
        if (budgets[slot].hash == h)
            budgets[slot].suppressed++;
        pthread_mutex_unlock(&rl_lock);
        return false;
    }
    pthread_mutex_lock(&rl_lock);
    uint64_t held = 0, since = mono;
    if (budgets[slot].hash == h) {
        budgets[slot].used++;
        held = budgets[slot].suppressed;
        since = budgets[slot].allowed_ms;
        budgets[slot].suppressed = 0;
        budgets[slot].allowed_ms = mono;
    }
    pthread_mutex_unlock(&rl_lock);
    write_summary(family, held, since);
    return true;
}
