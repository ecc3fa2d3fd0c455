/* log: leveled logging to stderr, safe from any thread.
 *
 * One line per call, in one of three formats (--log-format, YAML log.format):
 *   text    2026-11-22T01:02:03.456Z INFO  module: message
 *   json    {"ts":"2026-11-22T01:02:03.456Z","level":"info","module":"module","msg":"message"}
 *   logfmt  ts=2026-11-22T01:02:03.456Z level=info module=module msg="message"
 * The command line pins level and format: the YAML values then do not change them.
 * log_ratelimited() lets a caller log a recurring condition at most once per
 * interval per key (e.g. per topic), so a misbehaving publisher cannot flood the log. */
#ifndef TB_LOG_H
#define TB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tb_log_level { TB_LOG_DEBUG, TB_LOG_INFO, TB_LOG_WARN, TB_LOG_ERROR };
enum tb_log_format { TB_LOG_TEXT, TB_LOG_JSON, TB_LOG_LOGFMT };

void log_set_level(enum tb_log_level level);
enum tb_log_level log_get_level(void);
/* Parses "debug" | "info" | "warn" | "error"; returns -1 on anything else. */
int log_level_parse(const char *name);
void log_set_format(enum tb_log_format format);
/* Parses "text" | "json" | "logfmt"; returns -1 on anything else. */
int log_format_parse(const char *name);
/* The command line's choices: set and pinned against log_apply_config(). */
void log_pin_level(enum tb_log_level level);
void log_pin_format(enum tb_log_format format);
/* The configuration's log.level / log.format, where the command line did not pin them. */
void log_apply_config(enum tb_log_level level, enum tb_log_format format);

/* A budget for a family of info lines that can come in floods (client connects): at most
 * 'burst' lines per window; the rest are counted and summarized in one line when the
 * window ends ("... 1,234 more connection events in 60 s"). The caller owns the struct
 * (zeroed); one thread at a time. */
struct log_budget {
    uint64_t window_start_ms;
    unsigned used;
    uint64_t suppressed;
};
/* True when a line may be written now (writes the summary of the last window first). */
bool log_budget_take(struct log_budget *b, uint64_t now_ms, unsigned burst, uint64_t window_ms,
                     const char *module, const char *what);
/* From a periodic tick: writes the summary once the window is over. */
void log_budget_flush(struct log_budget *b, uint64_t now_ms, uint64_t window_ms, const char *module,
                      const char *what);
/* n with thousands separators ("1,234") into buf; returns buf. */
const char *log_thousands(uint64_t n, char *buf, size_t len);

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
