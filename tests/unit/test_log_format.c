/* log: the three line formats (stderr redirected to a pipe), escaping of hostile text,
 * the summarizing budget and thousands separators. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs one log_write with stderr on a pipe; returns the text written. */
static void capture(char *out, size_t len, enum tb_log_format fmt, const char *module, const char *msg)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    log_set_format(fmt);
    log_write(TB_LOG_WARN, module, "%s", msg);
    log_set_format(TB_LOG_TEXT);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    ssize_t n = read(p[0], out, len - 1);
    close(p[0]);
    out[n > 0 ? n : 0] = '\0';
}

static void formats(void **state)
{
    (void)state;
    char buf[8192];
    capture(buf, sizeof buf, TB_LOG_TEXT, "mqtt", "hello");
    assert_non_null(strstr(buf, "Z WARN  mqtt: hello\n"));
    capture(buf, sizeof buf, TB_LOG_JSON, "mqtt", "say \"hi\"\\\nINFO fake line\x01");
    assert_non_null(strstr(buf, "\"level\":\"warn\",\"module\":\"mqtt\",\"msg\":\"say \\\"hi\\\"\\\\\\nINFO fake line\\u0001\"}\n"));
    assert_int_equal(strchr(buf, '\n') - buf, (long)strlen(buf) - 1);    /* one line */
    capture(buf, sizeof buf, TB_LOG_LOGFMT, "ws", "a \"b\"\nc");
    assert_non_null(strstr(buf, " level=warn module=ws msg=\"a \\\"b\\\"\\nc\"\n"));
    assert_int_equal(strncmp(buf, "ts=", 3), 0);
}

static void long_messages_stay_one_line(void **state)
{
    (void)state;
    char big[5000], buf[16384];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture(buf, sizeof buf, TB_LOG_JSON, "x", big);
    size_t n = strlen(buf);
    assert_true(n > 100);
    assert_int_equal(buf[n - 1], '\n');
    assert_null(memchr(buf, '\n', n - 1));
}

static void parses_names(void **state)
{
    (void)state;
    assert_int_equal(log_format_parse("json"), TB_LOG_JSON);
    assert_int_equal(log_format_parse("logfmt"), TB_LOG_LOGFMT);
    assert_int_equal(log_format_parse("text"), TB_LOG_TEXT);
    assert_int_equal(log_format_parse("JSON "), -1);
    assert_int_equal(log_format_parse(""), -1);
}

static void thousands_and_budget(void **state)
{
    (void)state;
    char num[32];
    assert_string_equal(log_thousands(0, num, sizeof num), "0");
    assert_string_equal(log_thousands(999, num, sizeof num), "999");
    assert_string_equal(log_thousands(1234, num, sizeof num), "1,234");
    assert_string_equal(log_thousands(1234567, num, sizeof num), "1,234,567");
    struct log_budget b = {0};
    log_set_level(TB_LOG_ERROR);    /* the summary line itself is not under test here */
    unsigned allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += log_budget_take(&b, 1000000, 3, 60000, "t", "things");
    assert_int_equal(allowed, 3);
    assert_int_equal(b.suppressed, 7);
    log_budget_flush(&b, 1000000 + 59999, 60000, "t", "things");
    assert_int_equal(b.suppressed, 7);     /* window not over */
    assert_true(log_budget_take(&b, 1000000 + 60000, 3, 60000, "t", "things"));
    assert_int_equal(b.suppressed, 0);
    log_set_level(TB_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats),
        cmocka_unit_test(long_messages_stay_one_line),
        cmocka_unit_test(parses_names),
        cmocka_unit_test(thousands_and_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
