/* process_stats: parsing /proc/self/stat, including hostile command names, and reading
 * this very process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "process_stats.h"

static const char *const STAT_TAIL =
    " S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17 18 333 4096 55";

static void parses_fields_after_the_last_paren(void **state)
{
    (void)state;
    char buf[512];
    unsigned long long ut, st, start, vsize;
    long long rss;
    /* a command name holding ") S 9 9" must not shift the fields */
    snprintf(buf, sizeof buf, "42 (evil) S 9 9 (x)%s", STAT_TAIL);
    assert_int_equal(process_stats_parse_stat(buf, &ut, &st, &start, &vsize, &rss), 0);
    assert_int_equal(ut, 111);
    assert_int_equal(st, 222);
    assert_int_equal(start, 333);
    assert_int_equal(vsize, 4096);
    assert_int_equal(rss, 55);
}

static void refuses_malformed(void **state)
{
    (void)state;
    unsigned long long ut, st, start, vsize;
    long long rss;
    assert_int_equal(process_stats_parse_stat(NULL, &ut, &st, &start, &vsize, &rss), -1);
    assert_int_equal(process_stats_parse_stat("", &ut, &st, &start, &vsize, &rss), -1);
    assert_int_equal(process_stats_parse_stat("42 no parens S 1 2", &ut, &st, &start, &vsize, &rss), -1);
    assert_int_equal(process_stats_parse_stat("42 (cut) S 1 2 3", &ut, &st, &start, &vsize, &rss), -1);
}

static void reads_this_process(void **state)
{
    (void)state;
    struct process_stats ps;
    assert_int_equal(process_stats_read(&ps), 0);
    assert_true(ps.rss_bytes > 0);
    assert_true(ps.open_fds >= 3);      /* stdin, stdout, stderr at least */
    assert_true(ps.max_fds >= ps.open_fds);
    assert_true(ps.start_time_seconds > 1.5e9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_fields_after_the_last_paren),
        cmocka_unit_test(refuses_malformed),
        cmocka_unit_test(reads_this_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
