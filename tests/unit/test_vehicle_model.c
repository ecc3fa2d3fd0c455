/* test_vehicle_model: the simulator's vehicle model (simulator/vehicle_model.c), its PRNG
 * and its option parser.
 *
 * Long simulated runs check that normal driving is physically plausible and stays clear
 * of the example alert thresholds; scripted anomalies must cross them clearly and for
 * long enough, then clear; the same seed must give the same JSON byte for byte.
 * Single-threaded; no clock is read (the model never reads one). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "prng.h"
#include "sim_options.h"
#include "vehicle_model.h"

#define WALL_MS 1795309560123ULL /* a fixed wall time: JSON must not depend on the clock */

static const struct vm_config no_anomalies = {0, 0};

static void init(struct vehicle *v, uint64_t seed, uint32_t idx, enum vm_mode mode,
                 const struct vm_config *cfg)
{
    char id[32];
    snprintf(id, sizeof id, "veh-%05u", idx + 1);
    vehicle_init(v, seed, idx, id, mode, mode == VM_MODE_FLEET ? 1 : 0, cfg);
}

static double dist_m(double lat1, double lon1, double lat2, double lon2)
{
    double dy = (lat2 - lat1) * 111320.0;
    double dx = (lon2 - lon1) * 111320.0 * cos(lat1 * M_PI / 180.0);
    return sqrt(dx * dx + dy * dy);
}

/* ---- prng --------------------------------------------------------------------------- */

static void test_prng_deterministic_and_distinct_streams(void **state)
{
    struct prng a, b, c;
    prng_seed(&a, 42, 0);
    prng_seed(&b, 42, 0);
    prng_seed(&c, 42, 1);
    int same_as_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = prng_next(&a);
        assert_true(x == prng_next(&b));
        same_as_c += x == prng_next(&c);
    }
    assert_int_equal(same_as_c, 0);
}

static void test_prng_ranges(void **state)
{
    struct prng p;
    prng_seed(&p, 7, 3);
    double sum = 0, sumsq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = prng_uniform(&p);
        assert_true(u >= 0 && u < 1);
        assert_true(prng_below(&p, 10) < 10);
        double g = prng_normal(&p);
        sum += g;
        sumsq += g * g;
    }
    assert_true(fabs(sum / n) < 0.02);
    assert_true(fabs(sumsq / n - 1.0) < 0.03);
}

/* ---- normal driving ------------------------------------------------------------------ */

/* Runs 'count' vehicles for 'seconds' at step dt and checks every sample. */
static void check_normal_driving(enum vm_mode mode, double dt, double seconds, int count)
{
    double max_speed = 0, min_accel = 0, max_temp = 0, min_oil = 99, min_batt = 100;
    double total_km = 0;
    int moving_samples = 0, gears_seen = 0;
    for (int k = 0; k < count; k++) {
        struct vehicle v;
        init(&v, 1234, (uint32_t)k, mode, &no_anomalies);
        double prev_odo = v.odometer_km, prev_fuel = v.fuel_l, start_odo = v.odometer_km;
        double prev_lat = v.lat, prev_lon = v.lon;
        uint32_t prev_refuels = 0;
        for (double t = 0; t < seconds; t += dt) {
            double prev_kmh = v.speed_kmh;
            vehicle_step(&v, dt);
            /* bounds and alert clearance */
            assert_true(v.speed_kmh >= 0 && v.speed_kmh <= 126.0 + 1e-9);
            assert_true(v.accel_ms2 > -4.0 - 1e-9 && v.accel_ms2 < 3.0);
            assert_true(v.engine_temp_c > 0 && v.engine_temp_c < 99.0);
            assert_true(v.oil_bar > 1.55 && v.oil_bar < 5.5);
            assert_true(v.batt_level > 40.0 && v.batt_level <= 100.0);
            assert_true(v.batt_v > 13.0 && v.batt_v < 15.0);
            assert_true(v.rpm >= 700 && v.rpm < 4500);
            assert_true(v.gear >= 0 && v.gear <= 6);
            assert_true(v.fuel_l > 0 && v.fuel_l <= v.tank_l);
            assert_true(v.fuel_consumption >= 0 && v.fuel_consumption < 30);
            assert_true(v.heading >= 0 && v.heading < 360);
            assert_int_equal(v.anomaly, VM_ANOMALY_NONE);
            /* correlations */
            assert_true(v.odometer_km >= prev_odo);
            if (v.refuels == prev_refuels)
                assert_true(v.fuel_l <= prev_fuel + 1e-9); /* only a refuel adds fuel */
            double moved = dist_m(prev_lat, prev_lon, v.lat, v.lon);
            double driven = (prev_kmh + v.speed_kmh) / 3.6 / 2.0 * dt;
            assert_true(fabs(moved - driven) < 0.01 * driven + 0.5);
            assert_true(fabs((v.odometer_km - prev_odo) * 1000.0 - driven) < 1e-6 + 1e-9 * driven);
            assert_true((v.speed_kmh < 0.5) == (v.gear == 0));
            if (v.gear > 0) {
                moving_samples++;
                gears_seen |= 1 << v.gear;
                double wheel_rpm = v.speed_kmh / 3.6 / 2.0 * 60.0;
                double expect = wheel_rpm * (double[]){0, 3.6, 2.15, 1.45, 1.1, 0.87, 0.7}[v.gear] *
                                v.final_drive;
                assert_true(v.rpm >= expect - 100 || v.rpm < 1200); /* idle floor may dominate */
                assert_true(v.rpm <= fmax(expect, 1100) + 450);
            }
            max_speed = fmax(max_speed, v.speed_kmh);
            min_accel = fmin(min_accel, v.accel_ms2);
            max_temp = fmax(max_temp, v.engine_temp_c);
            min_oil = fmin(min_oil, v.oil_bar);
            min_batt = fmin(min_batt, v.batt_level);
            prev_odo = v.odometer_km;
            prev_fuel = v.fuel_l;
            prev_refuels = v.refuels;
            prev_lat = v.lat;
            prev_lon = v.lon;
        }
        total_km += v.odometer_km - start_odo;
        /* a warm engine after an hour of driving */
        if (seconds >= 1800)
            assert_true(v.engine_temp_c > 80);
    }
    /* the fleet really drives: it moves most of the time, uses its gears, brakes */
    assert_true(moving_samples > 0.5 * count * seconds / dt);
    assert_true(gears_seen == 0x7e || mode == VM_MODE_FLEET);
    assert_true(total_km / count > seconds / 3600.0 * 20); /* average > 20 km/h */
    assert_true(min_accel < -1.0);
    print_message("%s dt=%.1f: max speed %.1f, min accel %.2f, max temp %.1f, min oil %.2f, "
                  "min battery %.1f, %.1f km/vehicle/h\n", vm_mode_name(mode), dt, max_speed,
                  min_accel, max_temp, min_oil, min_batt, total_km / count / (seconds / 3600));
}

static void test_normal_personal_1hz_long(void **state)
{
    check_normal_driving(VM_MODE_PERSONAL, 1.0, 4 * 3600, 50);
}

static void test_normal_fleet_1hz_long(void **state)
{
    check_normal_driving(VM_MODE_FLEET, 1.0, 4 * 3600, 50);
}

static void test_normal_personal_10hz(void **state)
{
    check_normal_driving(VM_MODE_PERSONAL, 0.1, 3600, 10);
}

static void test_normal_half_hz_session_rate(void **state)
{
    check_normal_driving(VM_MODE_PERSONAL, 0.5, 2 * 3600, 10);
}

static void test_cold_engine_warms_up(void **state)
{
    for (uint32_t k = 0; k < 40; k++) {
        struct vehicle v;
        init(&v, 99, k, VM_MODE_PERSONAL, &no_anomalies);
        if (v.engine_temp_c > 50)
            continue; /* started warm */
        double t0 = v.engine_temp_c, prev = t0;
        int rises = 0;
        for (int s = 0; s < 900; s++) {
            vehicle_step(&v, 1.0);
            rises += v.engine_temp_c > prev;
            prev = v.engine_temp_c;
        }
        assert_true(v.engine_temp_c > 80); /* warm within 15 minutes */
        assert_true(rises > 300);
        return;
    }
    fail_msg("no vehicle started cold");
}

static void test_fuel_burns_with_distance_and_refuels(void **state)
{
    struct vehicle v;
    init(&v, 5, 0, VM_MODE_FLEET, &no_anomalies);
    double fuel0 = v.fuel_l, odo0 = v.odometer_km;
    for (int s = 0; s < 1800; s++)
        vehicle_step(&v, 1.0);
    double used = fuel0 - v.fuel_l, km = v.odometer_km - odo0;
    assert_true(km > 5);
    /* a van: roughly 6..20 L/100 km including idling */
    assert_true(used / km * 100 > 6 && used / km * 100 < 20);
    for (int s = 0; s < 48 * 3600 && v.refuels == 0; s++)
        vehicle_step(&v, 1.0);
    assert_true(v.refuels > 0);
}

/* ---- determinism ----------------------------------------------------------------------- */

static void run_json(uint64_t seed, char *out, size_t outlen, int steps)
{
    struct vm_config cfg = {0.01, 0x1e};
    struct vehicle v;
    init(&v, seed, 3, VM_MODE_PERSONAL, &cfg);
    size_t used = 0;
    char buf[1024];
    for (int s = 0; s < steps; s++) {
        vehicle_step(&v, 0.1);
        int n = vehicle_telemetry_json(&v, WALL_MS + (uint64_t)s * 100, NULL, buf, sizeof buf);
        assert_true(n > 0);
        if (used + (size_t)n < outlen) {
            memcpy(out + used, buf, (size_t)n);
            used += (size_t)n;
        }
    }
    out[used] = 0;
}

static void test_same_seed_same_values(void **state)
{
    static char a[1 << 20], b[1 << 20], c[1 << 20];
    run_json(777, a, sizeof a, 2000);
    run_json(777, b, sizeof b, 2000);
    run_json(778, c, sizeof c, 2000);
    assert_string_equal(a, b);
    assert_true(strcmp(a, c) != 0);
}

static void test_vehicles_independent_of_each_other(void **state)
{
    /* vehicle 5's values must not depend on how many other vehicles exist or step */
    struct vehicle lone, other, crowd;
    init(&lone, 11, 5, VM_MODE_PERSONAL, &no_anomalies);
    init(&crowd, 11, 5, VM_MODE_PERSONAL, &no_anomalies);
    init(&other, 11, 6, VM_MODE_PERSONAL, &no_anomalies);
    for (int s = 0; s < 500; s++) {
        vehicle_step(&lone, 1.0);
        vehicle_step(&other, 1.0);
        vehicle_step(&crowd, 1.0);
    }
    assert_true(lone.speed_kmh == crowd.speed_kmh && lone.lat == crowd.lat &&
                lone.engine_temp_c == crowd.engine_temp_c);
}

/* ---- anomalies ------------------------------------------------------------------------- */

struct excursion {
    double longest_alert_s; /* longest continuous time past the alert threshold */
    double extreme;
    int cleared;            /* crossed back past the clear threshold afterwards */
    double duration_s;      /* until the anomaly ended */
};

enum signal_kind { SIG_TEMP, SIG_BATT, SIG_OIL, SIG_ACCEL };

static double read_signal(const struct vehicle *v, enum signal_kind k)
{
    switch (k) {
    case SIG_TEMP: return v->engine_temp_c;
    case SIG_BATT: return v->batt_level;
    case SIG_OIL: return v->oil_bar;
    default: return v->accel_ms2;
    }
}

static struct excursion run_anomaly(enum vm_anomaly a, enum signal_kind k, double alert,
                                    double clear, int above, uint64_t seed, double dt, int warm)
{
    struct vehicle v;
    struct excursion e = {0, above ? -1e9 : 1e9, 0, 0};
    init(&v, seed, 0, VM_MODE_PERSONAL, &no_anomalies);
    for (int s = 0; s < warm; s++)
        vehicle_step(&v, 1.0);
    assert_int_equal(vehicle_start_anomaly(&v, a), 0);
    assert_int_equal(vehicle_start_anomaly(&v, VM_ANOMALY_OVERHEAT), -1); /* one at a time */
    double run = 0, t = 0;
    int crossed = 0;
    for (; t < 600; t += dt) {
        vehicle_step(&v, dt);
        double x = read_signal(&v, k);
        int past = above ? x > alert : x < alert;
        run = past ? run + dt : 0;
        e.longest_alert_s = fmax(e.longest_alert_s, run);
        e.extreme = above ? fmax(e.extreme, x) : fmin(e.extreme, x);
        crossed |= past;
        if (crossed && (above ? x < clear : x > clear))
            e.cleared = 1;
        if (v.anomaly == VM_ANOMALY_NONE && e.duration_s == 0)
            e.duration_s = t + dt;
        if (e.duration_s > 0 && e.cleared)
            break;
    }
    return e;
}

static void test_overheat_crosses_and_clears(void **state)
{
    for (uint64_t seed = 1; seed <= 10; seed++)
        for (int warm = 0; warm <= 600; warm += 600) {
            double dt = seed % 2 ? 1.0 : 0.1;
            struct excursion e = run_anomaly(VM_ANOMALY_OVERHEAT, SIG_TEMP, VM_TEMP_ALERT,
                                             VM_TEMP_CLEAR, 1, seed, dt, warm);
            assert_true(e.extreme >= 115);              /* ~118 C: clearly past 110 */
            assert_true(e.longest_alert_s >= 15);       /* the rule needs 5 s */
            assert_true(e.cleared);                     /* cools below 100 again */
            assert_true(e.duration_s > 0 && e.duration_s < 180);
        }
}

static void test_low_battery_crosses_and_clears(void **state)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        struct excursion e = run_anomaly(VM_ANOMALY_LOW_BATTERY, SIG_BATT, VM_BATTERY_ALERT,
                                         VM_BATTERY_CLEAR, 0, seed, seed % 2 ? 1.0 : 0.1, 30);
        assert_true(e.extreme <= 11);
        assert_true(e.longest_alert_s >= 10);
        assert_true(e.cleared);
    }
}

static void test_low_battery_drops_voltage(void **state)
{
    struct vehicle v;
    init(&v, 3, 0, VM_MODE_PERSONAL, &no_anomalies);
    vehicle_start_anomaly(&v, VM_ANOMALY_LOW_BATTERY);
    double min_v = 99;
    for (int s = 0; s < 60; s++) {
        vehicle_step(&v, 1.0);
        min_v = fmin(min_v, v.batt_v);
    }
    assert_true(min_v < 12.0);
}

static void test_low_oil_pressure_crosses_and_clears(void **state)
{
    for (uint64_t seed = 1; seed <= 10; seed++) {
        struct excursion e = run_anomaly(VM_ANOMALY_LOW_OIL_PRESSURE, SIG_OIL, VM_OIL_ALERT,
                                         VM_OIL_CLEAR, 0, seed, seed % 2 ? 1.0 : 0.1, 120);
        assert_true(e.extreme <= 0.85);
        assert_true(e.longest_alert_s >= 10); /* the rule needs 3 s */
        assert_true(e.cleared);
    }
}

static void test_harsh_braking_crosses(void **state)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        double dt = seed % 2 ? 1.0 : 0.1;
        struct excursion e = run_anomaly(VM_ANOMALY_HARSH_BRAKING, SIG_ACCEL, VM_BRAKE_ALERT,
                                         -1.0, 0, seed, dt, (int)seed * 7);
        if (e.extreme > -7.0)
            fail_msg("seed %llu dt %.1f: extreme %.2f, longest %.1f, duration %.1f", (unsigned long long)seed, dt, e.extreme, e.longest_alert_s, e.duration_s);
        assert_true(e.longest_alert_s >= dt); /* at least one sample, at any rate */
        assert_true(e.duration_s > 0 && e.duration_s < 120);
    }
}

static void test_random_anomalies_happen_at_the_given_rate(void **state)
{
    struct vm_config cfg = {0.002, 1u << VM_ANOMALY_OVERHEAT}; /* about one per 500 s */
    uint32_t started = 0;
    for (uint32_t k = 0; k < 20; k++) {
        struct vehicle v;
        init(&v, 8, k, VM_MODE_PERSONAL, &cfg);
        for (int s = 0; s < 3600; s++) {
            vehicle_step(&v, 1.0);
            assert_true(v.anomaly == VM_ANOMALY_NONE || v.anomaly == VM_ANOMALY_OVERHEAT);
        }
        started += v.anomalies;
    }
    /* ~20 x 3600 s x 0.002, minus the time spent inside anomalies: 60..200 */
    assert_true(started >= 60 && started <= 200);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void test_telemetry_json_schema(void **state)
{
    struct vehicle v;
    char buf[1024];
    init(&v, 1, 0, VM_MODE_FLEET, &no_anomalies);
    for (int s = 0; s < 100; s++)
        vehicle_step(&v, 1.0);
    assert_true(vehicle_telemetry_json(&v, WALL_MS, NULL, buf, sizeof buf) > 0);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "vehicle_id")->valuestring, "veh-00001");
    assert_string_equal(cJSON_GetObjectItem(j, "timestamp")->valuestring,
                        "2026-11-22T01:06:00.123Z");
    assert_true(cJSON_GetObjectItem(j, "ts_ms")->valuedouble == (double)WALL_MS);
    assert_string_equal(cJSON_GetObjectItem(j, "simulation_mode")->valuestring, "fleet");
    static const char *const numbers[] = {
        "speed", "acceleration", "engine_metrics.temperature", "engine_metrics.rpm",
        "engine_metrics.oil_pressure", "battery_metrics.voltage", "battery_metrics.level",
        "fuel_metrics.level", "fuel_metrics.consumption", "location.latitude",
        "location.longitude", "location.heading", "odometer", "gear",
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s", numbers[i]);
        char *dot = strchr(path, '.');
        const cJSON *x = j;
        if (dot) {
            *dot = 0;
            x = cJSON_GetObjectItem(x, path);
            assert_true(cJSON_IsObject(x));
            x = cJSON_GetObjectItem(x, dot + 1);
        } else {
            x = cJSON_GetObjectItem(x, path);
        }
        if (!cJSON_IsNumber(x))
            fail_msg("%s is not a number in %s", numbers[i], buf);
    }
    assert_null(cJSON_GetObjectItem(j, "session_id"));
    cJSON_Delete(j);

    assert_true(vehicle_telemetry_json(&v, WALL_MS, "abc-123", buf, sizeof buf) > 0);
    j = cJSON_Parse(buf);
    assert_string_equal(cJSON_GetObjectItem(j, "session_id")->valuestring, "abc-123");
    cJSON_Delete(j);
    assert_int_equal(vehicle_telemetry_json(&v, WALL_MS, NULL, buf, 50), -1);
}

static void test_setup_json(void **state)
{
    struct vehicle v;
    char buf[2048];
    init(&v, 1, 0, VM_MODE_FLEET, &no_anomalies);
    assert_true(vehicle_setup_json(&v, WALL_MS, "veh-conn-1", buf, sizeof buf) > 0);
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    static const char *const strings[] = {"vehicle_id", "make", "model", "driver", "vin",
                                          "fuel_type", "mqtt_client_id", "fleet_group"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        assert_true(cJSON_IsString(cJSON_GetObjectItem(j, strings[i])));
    assert_string_equal(cJSON_GetObjectItem(j, "fleet_group")->valuestring, "group-1");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "tyres")));
    cJSON_Delete(j);
}

static void test_anomaly_names(void **state)
{
    for (int a = 1; a < VM_ANOMALY_COUNT; a++) {
        const char *n = vm_anomaly_name((enum vm_anomaly)a);
        assert_int_equal(vm_anomaly_parse(n, strlen(n)), a);
    }
    assert_int_equal(vm_anomaly_parse("overheatx", 9), VM_ANOMALY_NONE);
    assert_null(vm_anomaly_name(VM_ANOMALY_NONE));
}

/* ---- options --------------------------------------------------------------------------- */

static int parse(struct sim_options *o, char *err, const char *a0, ...)
{
    char *argv[32] = {"telesim"};
    int argc = 1;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return sim_options_parse(o, argc, argv, err, 256);
}

static void test_options(void **state)
{
    struct sim_options o;
    char err[256];
    assert_int_equal(parse(&o, err, NULL), 0);
    assert_int_equal(o.vehicles, 10);
    assert_true(o.rate == 1.0 && o.port == 1883 && o.protocol == 311 && !o.session);

    assert_int_equal(parse(&o, err, "--vehicles", "1000", "--interval", "0.1", "--mode", "mixed",
                           "--seed", "42", "--protocol", "5", "--qos", "1", "--anomaly",
                           "overheat,harsh_braking", "--connections", "10", NULL), 0);
    assert_true(o.vehicles == 1000 && fabs(o.rate - 10) < 1e-9 && o.mode == SIM_MODE_MIXED);
    assert_true(o.seed_set && o.seed == 42 && o.protocol == 5 && o.qos == 1);
    assert_true(o.anomaly_forced);
    assert_int_equal(o.anomaly_mask, (1u << VM_ANOMALY_OVERHEAT) | (1u << VM_ANOMALY_HARSH_BRAKING));

    assert_int_equal(parse(&o, err, "--session", NULL), 0);
    assert_true(o.session && o.vehicles == 1 && o.rate == 2.0);

    static const char *const bad[][3] = {
        {"--vehicles", "0"}, {"--vehicles", "100001"}, {"--vehicles", "1.5"},
        {"--rate", "abc"}, {"--rate", "0"}, {"--interval", "-1"}, {"--mode", "race"},
        {"--qos", "3"}, {"--protocol", "4"}, {"--port", "70000"}, {"--anomaly", "flat_tyre"},
        {"--anomaly-rate", "2"}, {"--seed", "-1"}, {"--bogus", NULL}, {"--vehicles", NULL},
        {"--id-prefix", "a/b"}, {"stray", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (parse(&o, err, bad[i][0], bad[i][1], NULL) != -1)
            fail_msg("accepted %s %s", bad[i][0], bad[i][1] ? bad[i][1] : "");
        assert_true(strlen(err) > 10);
    }
    assert_int_equal(parse(&o, err, "--vehicles", "2", "--connections", "3", NULL), -1);
    assert_int_equal(parse(&o, err, "--session", "--vehicles", "5", NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prng_deterministic_and_distinct_streams),
        cmocka_unit_test(test_prng_ranges),
        cmocka_unit_test(test_normal_personal_1hz_long),
        cmocka_unit_test(test_normal_fleet_1hz_long),
        cmocka_unit_test(test_normal_personal_10hz),
        cmocka_unit_test(test_normal_half_hz_session_rate),
        cmocka_unit_test(test_cold_engine_warms_up),
        cmocka_unit_test(test_fuel_burns_with_distance_and_refuels),
        cmocka_unit_test(test_same_seed_same_values),
        cmocka_unit_test(test_vehicles_independent_of_each_other),
        cmocka_unit_test(test_overheat_crosses_and_clears),
        cmocka_unit_test(test_low_battery_crosses_and_clears),
        cmocka_unit_test(test_low_battery_drops_voltage),
        cmocka_unit_test(test_low_oil_pressure_crosses_and_clears),
        cmocka_unit_test(test_harsh_braking_crosses),
        cmocka_unit_test(test_random_anomalies_happen_at_the_given_rate),
        cmocka_unit_test(test_telemetry_json_schema),
        cmocka_unit_test(test_setup_json),
        cmocka_unit_test(test_anomaly_names),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
