/* log: leveled logging to stderr, safe from any thread.
 *
 * One line per call: "2026-11-22T01:02:03.456Z LEVEL module: message".
 * log_ratelimited() lets a caller log a recurring condition at most once per
 * interval per key (e.g. per topic), so a misbehaving publisher cannot flood the log. */
#ifndef TB_LOG_H
#define TB_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum tb_log_level { TB_LOG_DEBUG, TB_LOG_INFO, TB_LOG_WARN, TB_LOG_ERROR };

void log_set_level(enum tb_log_level level);
enum tb_log_level log_get_level(void);
/* Parses "debug" | "info" | "warn" | "error"; returns -1 on anything else. */
int log_level_parse(const char *name);

void log_write(enum tb_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when a message for 'key' may be logged now: at most once per interval_ms
 * per key (a small fixed table; the oldest keys are forgotten first). */
bool log_ratelimit_allow(const char *key, uint64_t interval_ms);
/* log_ratelimit_allow() for 'key', within an overall budget of 'burst' lines per 10 s for
 * all keys of 'family' together, so thousands of distinct keys cannot flood the log. */
bool log_ratelimit_allow_capped(const char *family, const char *key, uint64_t interval_ms, unsigned burst);

#define LOG_DEBUG(mod, ...) do { if (log_get_level() <= TB_LOG_DEBUG) log_write(TB_LOG_DEBUG, mod, __VA_ARGS__); } while (0)
#define LOG_INFO(mod, ...)  log_write(TB_LOG_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  log_write(TB_LOG_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) log_write(TB_LOG_ERROR, mod, __VA_ARGS__)

/* Monotonic and wall clocks in milliseconds. */
uint64_t tb_now_ms(void);
uint64_t tb_wall_ms(void);

#endif
