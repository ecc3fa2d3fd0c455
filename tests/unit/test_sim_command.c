/* Unit tests for telesim's command module: which topics are commands, where the answer
 * goes (MQTT 5 properties over payload fields), and the answers to ping, horn, set_rate
 * (valid and refused rates, the publish divider) and request_diagnostics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "command.h"
#include "vehicle_model.h"

static struct sim_command *parse(const char *topic, const char *payload, const char *rt, const char *corr)
{
    return command_parse(topic, payload, strlen(payload), rt, corr, corr ? strlen(corr) : 0);
}

static void test_parse(void **state)
{
    (void)state;
    assert_null(parse("vehicle/v1/telemetry", "{}", NULL, NULL));
    assert_null(parse("vehicle//cmd/ping", "{}", NULL, NULL));
    assert_null(parse("vehicle/v1/cmd/", "{}", NULL, NULL));
    assert_null(parse("vehicle/v1/cmd/a/b", "{}", NULL, NULL));
    struct sim_command *c = parse("vehicle/v1/cmd/ping",
                                  "{\"sender\":\"alice\",\"reply_to\":\"r/1\",\"correlation\":\"c1\",\"args\":{\"x\":1}}",
                                  NULL, NULL);
    assert_non_null(c);
    assert_string_equal(c->vehicle, "v1");
    assert_string_equal(c->name, "ping");
    assert_string_equal(c->reply_to, "r/1");      /* 3.1.1: from the payload */
    assert_string_equal(c->correlation, "c1");
    assert_string_equal(c->sender, "alice");
    assert_string_equal(c->args, "{\"x\":1}");
    command_free(c);
    c = parse("vehicle/v1/cmd/ping", "{\"reply_to\":\"r/1\",\"correlation\":\"c1\"}", "r/5", "c5");
    assert_string_equal(c->reply_to, "r/5");      /* MQTT 5 properties win */
    assert_string_equal(c->correlation, "c5");
    command_free(c);
    c = parse("vehicle/v1/cmd/ping", "not json", NULL, NULL);
    assert_string_equal(c->reply_to, "");         /* nobody to answer */
    command_free(c);
}

static cJSON *answer(const char *name, const char *payload, struct vehicle *v, uint32_t *every)
{
    char topic[64];
    snprintf(topic, sizeof topic, "vehicle/v1/cmd/%s", name);
    struct sim_command *c = parse(topic, payload, "r/1", "k");
    char *text = command_answer(c, v, 10.0, 1000, every);
    command_free(c);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static bool ok(const cJSON *j) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")); }

static void test_answers(void **state)
{
    (void)state;
    static struct vm_config cfg;
    struct vehicle v;
    vehicle_init(&v, 1, 0, "v1", VM_MODE_PERSONAL, 0, &cfg);
    uint32_t every = 1;
    cJSON *j = answer("ping", "{\"sender\":\"alice\"}", &v, &every);
    assert_true(ok(j));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "sender")->valuestring, "alice");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "vehicle_id")->valuestring, "v1");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "correlation")->valuestring, "k");
    cJSON_Delete(j);
    j = answer("horn", "{}", &v, &every);
    assert_true(ok(j) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "honked")));
    cJSON_Delete(j);
    j = answer("set_rate", "{\"args\":{\"rate\":2.5}}", &v, &every);
    assert_true(ok(j));
    assert_int_equal(every, 4);                   /* 10 Hz / 2.5 */
    cJSON_Delete(j);
    static const char *const bad_rates[] = {"{\"args\":{\"rate\":0}}", "{\"args\":{\"rate\":11}}",
                                            "{\"args\":{\"rate\":\"2\"}}", "{}"};
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
        j = answer("set_rate", bad_rates[i], &v, &every);
        assert_false(ok(j));
        assert_int_equal(every, 4);               /* unchanged */
        cJSON_Delete(j);
    }
    j = answer("request_diagnostics", "{}", &v, &every);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "diagnostics");
    assert_true(ok(j) && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(d, "speed")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "anomaly")->valuestring, "none");
    cJSON_Delete(j);
    j = answer("self_destruct", "{}", &v, &every);
    assert_false(ok(j));
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
