/* vehicle_model: the state machine and signal physics behind every simulated vehicle.
 *
 * One step: maybe start a random anomaly, run the driving phase machine (speed and
 * acceleration), then derive gear and rpm, engine temperature, oil pressure, battery,
 * fuel and position from the new speed, and let an active anomaly override its signal.
 * Numbers are chosen so that normal driving stays well inside the example alert
 * thresholds (speed <= 126 km/h, braking >= -4 m/s^2, coolant <= ~95 C, oil >= 1.7 bar,
 * battery >= 40 %), and anomalies cross them by a clear margin for 10+ seconds.
 * Pure (see vehicle_model.h); all randomness comes from the vehicle's own prng. */
#include "vehicle_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEG2RAD (M_PI / 180.0)
#define M_PER_DEG_LAT 111320.0
#define WHEEL_CIRCUMFERENCE_M 2.0
#define SPEED_CAP_KMH 126.0
#define HOME_RADIUS_M 15000.0

struct catalogue_entry {
    const char *make, *model, *fuel, *tyre_size;
    double tank_l, final_drive;
};

static const struct catalogue_entry personal_cars[] = {
    {"Volkswagen", "Golf", "petrol", "225/45 R17", 50, 3.65},
    {"Toyota", "Corolla", "hybrid", "225/45 R17", 43, 3.70},
    {"BMW", "320d", "diesel", "225/50 R17", 59, 3.15},
    {"Skoda", "Octavia", "petrol", "205/55 R16", 50, 3.60},
    {"Ford", "Focus", "petrol", "215/55 R16", 52, 3.82},
    {"Honda", "Civic", "petrol", "235/40 R18", 47, 3.55},
};
static const struct catalogue_entry fleet_vans[] = {
    {"Mercedes-Benz", "Sprinter", "diesel", "235/65 R16C", 71, 4.18},
    {"Ford", "Transit", "diesel", "215/65 R16C", 80, 4.10},
    {"Renault", "Master", "diesel", "225/65 R16C", 80, 4.40},
    {"Iveco", "Daily", "diesel", "225/65 R16C", 90, 4.50},
};
#define N_PERSONAL (sizeof personal_cars / sizeof personal_cars[0])
#define N_FLEET (sizeof fleet_vans / sizeof fleet_vans[0])

static const char *const drivers[] = {
    "Alex Weber", "Maria Rossi", "Jonas Berg", "Sofia Lind", "Tom Okafor", "Lena Novak",
    "Ravi Patel", "Emma Dubois", "Kenji Sato", "Ana Costa", "Max Keller", "Nora Hansen",
    "Luca Bianchi", "Zoe Martin", "Ivan Petrov", "Mia Schulz",
};
#define N_DRIVERS (sizeof drivers / sizeof drivers[0])

static const char *const tyre_brands[] = {"Michelin", "Continental", "Pirelli", "Bridgestone"};

static const struct { const char *name; double lat, lon; } cities[] = {
    {"Stuttgart", 48.7758, 9.1829}, {"Munich", 48.1351, 11.5820},
    {"Berlin", 52.5200, 13.4050},  {"Hamburg", 53.5511, 9.9937},
};
#define N_CITIES (sizeof cities / sizeof cities[0])

/* Gear ratios, 1st..6th; index 0 (neutral) unused. Upshift speeds in km/h. */
static const double gear_ratio[7] = {0, 3.60, 2.15, 1.45, 1.10, 0.87, 0.70};
static const double gear_up_kmh[6] = {0, 18, 32, 50, 68, 88};

static const char *const anomaly_names[VM_ANOMALY_COUNT] = {
    NULL, "overheat", "low_battery", "low_oil_pressure", "harsh_braking",
};

static const struct catalogue_entry *catalogue(const struct vehicle *v)
{
    return v->mode == VM_MODE_FLEET ? &fleet_vans[v->make_model % N_FLEET]
                                    : &personal_cars[v->make_model % N_PERSONAL];
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

const char *vm_anomaly_name(enum vm_anomaly a)
{
    return a > VM_ANOMALY_NONE && a < VM_ANOMALY_COUNT ? anomaly_names[a] : NULL;
}

enum vm_anomaly vm_anomaly_parse(const char *name, size_t len)
{
    for (int a = 1; a < VM_ANOMALY_COUNT; a++)
        if (strlen(anomaly_names[a]) == len && memcmp(anomaly_names[a], name, len) == 0)
            return (enum vm_anomaly)a;
    return VM_ANOMALY_NONE;
}

const char *vm_mode_name(enum vm_mode m)
{
    return m == VM_MODE_FLEET ? "fleet" : "personal";
}

void vehicle_init(struct vehicle *v, uint64_t seed, uint32_t index, const char *id,
                  enum vm_mode mode, uint32_t group, const struct vm_config *cfg)
{
    memset(v, 0, sizeof *v);
    snprintf(v->id, sizeof v->id, "%s", id);
    v->mode = mode;
    v->index = index;
    v->group = group;
    v->cfg = cfg;
    prng_seed(&v->rng, seed, index);
    struct prng *r = &v->rng;

    v->make_model = (uint16_t)prng_below(r, 1000);
    v->driver = (uint16_t)prng_below(r, N_DRIVERS);
    v->year = (uint16_t)(2016 + prng_below(r, 10));
    v->tank_l = catalogue(v)->tank_l;
    v->final_drive = catalogue(v)->final_drive;

    uint32_t c = prng_below(r, N_CITIES);
    double dist = 5000.0 * sqrt(prng_uniform(r)), bearing = prng_range(r, 0, 2 * M_PI);
    v->home_lat = cities[c].lat;
    v->home_lon = cities[c].lon;
    v->lat = v->home_lat + dist * cos(bearing) / M_PER_DEG_LAT;
    v->lon = v->home_lon + dist * sin(bearing) / (M_PER_DEG_LAT * cos(v->home_lat * DEG2RAD));
    v->heading = prng_range(r, 0, 360);

    v->ambient_c = prng_range(r, 5, 25);
    v->engine_temp_c = prng_chance(r, 0.5) ? prng_range(r, 84, 90)
                                          : v->ambient_c + prng_range(r, 0, 10);
    v->batt_level = prng_range(r, 60, 98);
    v->batt_v = 14.1;
    v->fuel_l = v->tank_l * prng_range(r, 0.3, 0.95);
    v->odometer_km = prng_range(r, 1000, 150000);
    v->rpm = 800;
    v->oil_bar = 2.5;
    v->phase = VM_PHASE_STOP;
    v->phase_left_s = prng_range(r, 0.5, 5);
}

/* ---- driving phases ------------------------------------------------------------------ */

/* A new trip leg: road type decides the target speed. */
static double pick_target_kmh(struct vehicle *v)
{
    struct prng *r = &v->rng;
    double u = prng_uniform(r);
    if (v->mode == VM_MODE_FLEET)
        return u < 0.55 ? prng_range(r, 30, 50) : u < 0.85 ? prng_range(r, 60, 80)
                                                            : prng_range(r, 85, 98);
    return u < 0.5 ? prng_range(r, 30, 50) : u < 0.8 ? prng_range(r, 60, 95)
                                                      : prng_range(r, 100, 118);
}

static void turn_at_junction(struct vehicle *v)
{
    struct prng *r = &v->rng;
    double dy = (v->home_lat - v->lat) * M_PER_DEG_LAT;
    double dx = (v->home_lon - v->lon) * M_PER_DEG_LAT * cos(v->lat * DEG2RAD);
    if (dx * dx + dy * dy > HOME_RADIUS_M * HOME_RADIUS_M) {
        v->heading = atan2(dx, dy) / DEG2RAD + prng_range(r, -30, 30);
    } else {
        static const double turns[] = {-90, 0, 0, 90};
        v->heading += turns[prng_below(r, 4)] + prng_range(r, -10, 10);
    }
    v->heading = fmod(v->heading + 720.0, 360.0);
}

static void start_accel(struct vehicle *v, double target_kmh)
{
    v->phase = VM_PHASE_ACCEL;
    v->target_kmh = target_kmh;
    v->accel_cmd = v->mode == VM_MODE_FLEET ? prng_range(&v->rng, 0.8, 1.6)
                                            : prng_range(&v->rng, 1.2, 2.6);
}

static void start_brake(struct vehicle *v, double target_kmh, double decel)
{
    v->phase = VM_PHASE_BRAKE;
    v->target_kmh = target_kmh;
    v->accel_cmd = decel;
}

static void end_leg(struct vehicle *v)
{
    struct prng *r = &v->rng;
    if (prng_chance(r, 0.45)) {
        start_brake(v, 0, prng_range(r, 1.5, 3.5));
        return;
    }
    double t = pick_target_kmh(v);
    if (t > v->speed_kmh)
        start_accel(v, t);
    else
        start_brake(v, t, prng_range(r, 1.0, 2.5));
}

/* Harsh braking needs speed to brake from: get going first, then stamp on the brake. */
static void drive_harsh_braking(struct vehicle *v)
{
    if (v->anomaly_stage == 0) {
        if (v->speed_kmh >= 60 && v->phase != VM_PHASE_STOP) {
            start_brake(v, 0, prng_range(&v->rng, 7.5, 9.0));
            v->anomaly_stage = 1;
        } else if (v->phase != VM_PHASE_ACCEL || v->target_kmh < 65) {
            if (v->phase == VM_PHASE_STOP)
                turn_at_junction(v);
            start_accel(v, prng_range(&v->rng, 70, 90));
        }
    } else if (v->phase == VM_PHASE_STOP) {
        v->anomaly = VM_ANOMALY_NONE;
    }
}

/* Returns the new speed in m/s after dt. */
static double drive(struct vehicle *v, double dt)
{
    struct prng *r = &v->rng;
    if (v->anomaly == VM_ANOMALY_HARSH_BRAKING)
        drive_harsh_braking(v); /* may change phase and target: read them after */
    double vms = v->speed_kmh / 3.6, tgt = v->target_kmh / 3.6, a, nv;

    switch (v->phase) {
    case VM_PHASE_STOP:
        v->phase_left_s -= dt;
        if (v->phase_left_s <= 0) {
            turn_at_junction(v);
            start_accel(v, pick_target_kmh(v));
        }
        return 0;
    case VM_PHASE_ACCEL:
        a = v->accel_cmd * clamp((tgt - vms) / 3.0, 0.15, 1.0);
        nv = vms + a * dt;
        if (nv >= tgt - 0.15) {
            nv = fmin(nv, tgt);
            v->phase = VM_PHASE_CRUISE;
            v->phase_left_s = prng_range(r, 15, 120);
        }
        return nv;
    case VM_PHASE_CRUISE:
        a = clamp(0.15 * (tgt - vms) + 0.25 * prng_normal(r), -1.0, 1.0);
        v->heading = fmod(v->heading + 1.5 * sqrt(dt) * prng_normal(r) + 360.0, 360.0);
        v->phase_left_s -= dt;
        if (v->phase_left_s <= 0)
            end_leg(v);
        return clamp(vms + a * dt, 0, SPEED_CAP_KMH / 3.6);
    case VM_PHASE_BRAKE:
        nv = vms - v->accel_cmd * dt;
        if (nv <= tgt + 0.05) {
            nv = tgt;
            if (tgt <= 0) {
                v->phase = VM_PHASE_STOP;
                v->phase_left_s = prng_range(r, 3, 25);
            } else {
                v->phase = VM_PHASE_CRUISE;
                v->phase_left_s = prng_range(r, 15, 120);
            }
        }
        return nv;
    }
    return vms;
}

/* ---- powertrain, engine, electrics, fuel -------------------------------------------- */

static void powertrain(struct vehicle *v)
{
    if (v->speed_kmh < 0.5) {
        v->gear = 0;
    } else {
        int g = 1;
        while (g < 6 && v->speed_kmh >= gear_up_kmh[g])
            g++;
        v->gear = g;
    }
    double idle = 800 + 15 * prng_normal(&v->rng);
    if (v->engine_temp_c < 50)
        idle += 250; /* fast idle while cold */
    double wheel_rpm = v->speed_kmh / 3.6 / WHEEL_CIRCUMFERENCE_M * 60.0;
    double rpm = wheel_rpm * gear_ratio[v->gear] * v->final_drive;
    if (v->accel_ms2 > 0)
        rpm += 120 * v->accel_ms2;
    v->rpm = fmax(idle, rpm + 20 * prng_normal(&v->rng));
}

static double engine_load(const struct vehicle *v)
{
    return clamp(v->rpm / 4000.0 + fmax(v->accel_ms2, 0) / 4.0, 0, 1);
}

static void thermal(struct vehicle *v, double dt)
{
    double load = engine_load(v);
    double set = v->speed_kmh < 0.5 ? 86.0 : 87.0 + 6.0 * load;
    double t = v->engine_temp_c;
    if (t < set - 2.0)
        t = fmin(set, t + (0.10 + 0.30 * load) * dt); /* warm-up, thermostat closed */
    else
        t += (set - t) * (1.0 - exp(-dt / 30.0));     /* thermostat regulating */
    t += 0.05 * prng_normal(&v->rng);
    v->engine_temp_c = t;
}

static double normal_oil_bar(const struct vehicle *v)
{
    double cold = v->engine_temp_c < 60 ? 0.8 * (60 - v->engine_temp_c) / 50.0 : 0;
    return clamp(1.7 + 0.75 * v->rpm / 1000.0 + cold, 1.7, 5.0);
}

static void electrics(struct vehicle *v, double dt)
{
    if (v->batt_level < 100)
        v->batt_level = fmin(100, v->batt_level + (v->speed_kmh > 0.5 ? 0.004 : 0.001) * dt);
    v->batt_v = clamp(14.1 + 0.08 * prng_normal(&v->rng) - (100 - v->batt_level) * 0.003,
                      13.6, 14.5);
}

/* Burns fuel for the distance (and idle time) just driven; refuels at a stop when low. */
static void fuel(struct vehicle *v, double dt, double dist_m)
{
    double kmh = v->speed_kmh, base;
    if (v->mode == VM_MODE_FLEET)
        base = 8.0 + 0.0009 * (kmh - 50) * (kmh - 50);
    else
        base = 4.3 + 0.00045 * (kmh - 55) * (kmh - 55);
    if (kmh < 2) {
        v->fuel_consumption = 0;
        v->fuel_l -= (v->mode == VM_MODE_FLEET ? 1.2 : 0.8) * dt / 3600.0;
    } else {
        v->fuel_consumption = base + 2.5 * fmax(v->accel_ms2, 0) + 0.1 * fabs(prng_normal(&v->rng));
        v->fuel_l -= v->fuel_consumption * (dist_m / 1000.0) / 100.0;
    }
    if (v->phase == VM_PHASE_STOP && v->fuel_l < 0.10 * v->tank_l) {
        v->fuel_l = v->tank_l * prng_range(&v->rng, 0.9, 1.0);
        v->refuels++;
    }
    v->fuel_l = fmax(v->fuel_l, 0.02 * v->tank_l);
}

static void move(struct vehicle *v, double dist_m)
{
    double h = v->heading * DEG2RAD;
    v->lat += dist_m * cos(h) / M_PER_DEG_LAT;
    v->lon += dist_m * sin(h) / (M_PER_DEG_LAT * cos(v->lat * DEG2RAD));
    v->odometer_km += dist_m / 1000.0;
}

/* ---- anomalies ------------------------------------------------------------------------ */

int vehicle_start_anomaly(struct vehicle *v, enum vm_anomaly a)
{
    if (v->anomaly != VM_ANOMALY_NONE)
        return -1;
    if (a <= VM_ANOMALY_NONE || a >= VM_ANOMALY_COUNT)
        return -1;
    struct prng *r = &v->rng;
    v->anomaly = a;
    v->anomaly_stage = 0;
    v->anomaly_t = 0;
    v->anomalies++;
    switch (a) {
    case VM_ANOMALY_OVERHEAT:
        v->anomaly_level = prng_range(r, 116, 120);
        v->anomaly_hold_s = prng_range(r, 18, 24);
        break;
    case VM_ANOMALY_LOW_BATTERY:
        v->anomaly_level = prng_range(r, 6, 10);
        v->anomaly_hold_s = prng_range(r, 15, 25);
        v->batt_level_before = v->batt_level;
        break;
    case VM_ANOMALY_LOW_OIL_PRESSURE:
        v->anomaly_level = prng_range(r, 0.5, 0.8);
        v->anomaly_hold_s = prng_range(r, 12, 20);
        break;
    default:
        break;
    }
    return 0;
}

static void maybe_random_anomaly(struct vehicle *v, double dt)
{
    const struct vm_config *c = v->cfg;
    if (!c || c->anomaly_rate <= 0 || v->anomaly != VM_ANOMALY_NONE)
        return;
    double p = 1.0 - pow(1.0 - fmin(c->anomaly_rate, 1.0), dt);
    if (!prng_chance(&v->rng, p))
        return;
    enum vm_anomaly allowed[VM_ANOMALY_COUNT];
    int n = 0;
    for (int a = 1; a < VM_ANOMALY_COUNT; a++)
        if (c->anomaly_mask & (1u << a))
            allowed[n++] = (enum vm_anomaly)a;
    if (n > 0)
        vehicle_start_anomaly(v, allowed[prng_below(&v->rng, (uint32_t)n)]);
}

/* Moves *x towards 'to' by at most rate*dt; returns true on arrival. */
static int approach(double *x, double to, double rate, double dt)
{
    double step = rate * dt;
    if (fabs(to - *x) <= step) {
        *x = to;
        return 1;
    }
    *x += to > *x ? step : -step;
    return 0;
}

/* The scripted excursion: onset (stage 0) to the level, hold (1), recovery (2). */
static void anomaly_signal(struct vehicle *v, double *sig, double onset_rate, double normal,
                           double recover_rate, double noise, double dt)
{
    v->anomaly_t += dt;
    switch (v->anomaly_stage) {
    case 0:
        if (approach(sig, v->anomaly_level, onset_rate, dt)) {
            v->anomaly_stage = 1;
            v->anomaly_t = 0;
        }
        break;
    case 1:
        *sig = v->anomaly_level + noise * prng_normal(&v->rng);
        if (v->anomaly_t >= v->anomaly_hold_s) {
            *sig = v->anomaly_level;
            v->anomaly_stage = 2;
            v->anomaly_t = 0;
        }
        break;
    default:
        if (approach(sig, normal, recover_rate, dt))
            v->anomaly = VM_ANOMALY_NONE;
        break;
    }
}

static void run_anomaly(struct vehicle *v, double dt, double prev_temp)
{
    double normal;
    switch (v->anomaly) {
    case VM_ANOMALY_OVERHEAT:
        /* the thermal model ran on; restart from where the excursion left the engine */
        normal = v->engine_temp_c;
        v->engine_temp_c = prev_temp;
        anomaly_signal(v, &v->engine_temp_c,
                       fmax(2.0, (v->anomaly_level - prev_temp) / 10.0), normal, 0.8, 0.4, dt);
        break;
    case VM_ANOMALY_LOW_BATTERY:
        anomaly_signal(v, &v->batt_level, 2.0, v->batt_level_before, 1.5, 0.2, dt);
        v->batt_v = v->anomaly == VM_ANOMALY_NONE ? v->batt_v
                    : clamp(11.0 + v->batt_level * 0.012 + 0.03 * prng_normal(&v->rng), 10.8, 12.4);
        break;
    case VM_ANOMALY_LOW_OIL_PRESSURE:
        normal = normal_oil_bar(v);
        anomaly_signal(v, &v->oil_bar, 0.3, normal, 0.3, 0.04, dt);
        break;
    default:
        break;
    }
}

void vehicle_step(struct vehicle *v, double dt)
{
    double prev_ms = v->speed_kmh / 3.6, prev_temp = v->engine_temp_c;
    v->t_s += dt;
    maybe_random_anomaly(v, dt);

    double nv = drive(v, dt);
    v->accel_ms2 = (nv - prev_ms) / dt;
    v->speed_kmh = nv * 3.6;
    double dist_m = (prev_ms + nv) / 2.0 * dt;

    powertrain(v);
    thermal(v, dt);
    if (v->anomaly != VM_ANOMALY_LOW_OIL_PRESSURE)
        v->oil_bar = normal_oil_bar(v) + 0.03 * prng_normal(&v->rng);
    v->oil_bar = fmax(v->oil_bar, 0.0);
    if (v->anomaly != VM_ANOMALY_LOW_BATTERY)
        electrics(v, dt);
    fuel(v, dt, dist_m);
    move(v, dist_m);
    run_anomaly(v, dt, prev_temp);
}

/* ---- JSON ----------------------------------------------------------------------------- */

void vm_format_time(uint64_t wall_ms, char out[32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* the modulos only tell the compiler the widths (years stay 4 digits until 9999) */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(wall_ms % 1000));
}

static int fit(int n, size_t len)
{
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int vehicle_telemetry_json(const struct vehicle *v, uint64_t wall_ms, const char *session_id,
                           char *buf, size_t len)
{
    char ts[32], sess[80] = "";
    vm_format_time(wall_ms, ts);
    if (session_id)
        snprintf(sess, sizeof sess, "\"session_id\":\"%.40s\",", session_id);
    double fuel_pct = 100.0 * v->fuel_l / v->tank_l;
    int n = snprintf(buf, len,
        "{\"vehicle_id\":\"%s\",%s\"timestamp\":\"%s\",\"ts_ms\":%llu,"
        "\"simulation_mode\":\"%s\",\"speed\":%.1f,\"acceleration\":%.2f,"
        "\"engine_metrics\":{\"temperature\":%.1f,\"rpm\":%d,\"oil_pressure\":%.2f},"
        "\"battery_metrics\":{\"voltage\":%.2f,\"level\":%.1f},"
        "\"fuel_metrics\":{\"level\":%.1f,\"consumption\":%.1f},"
        "\"location\":{\"latitude\":%.6f,\"longitude\":%.6f,\"heading\":%.1f},"
        "\"odometer\":%.2f,\"gear\":%d}",
        v->id, sess, ts, (unsigned long long)wall_ms, vm_mode_name(v->mode), v->speed_kmh,
        v->accel_ms2, v->engine_temp_c, (int)lround(v->rpm), v->oil_bar, v->batt_v,
        v->batt_level, fuel_pct, v->fuel_consumption, v->lat, v->lon, v->heading,
        v->odometer_km, v->gear);
    return fit(n, len);
}

int vehicle_setup_json(const struct vehicle *v, uint64_t wall_ms, const char *client_id,
                       char *buf, size_t len)
{
    const struct catalogue_entry *c = catalogue(v);
    char ts[32], group[32] = "null";
    vm_format_time(wall_ms, ts);
    if (v->group)
        snprintf(group, sizeof group, "\"group-%u\"", v->group);
    double front = v->mode == VM_MODE_FLEET ? 3.5 : 2.4;
    int n = snprintf(buf, len,
        "{\"vehicle_id\":\"%s\",\"timestamp\":\"%s\",\"ts_ms\":%llu,\"simulation_mode\":\"%s\","
        "\"make\":\"%s\",\"model\":\"%s\",\"year\":%u,\"fuel_type\":\"%s\","
        "\"fuel_tank_l\":%.0f,\"vin\":\"TSIM%013u\",\"driver\":\"%s\",\"fleet_group\":%s,"
        "\"tyres\":{\"brand\":\"%s\",\"size\":\"%s\",\"season\":\"%s\","
        "\"pressure_bar\":{\"front\":%.1f,\"rear\":%.1f}},"
        "\"odometer\":%.2f,\"mqtt_client_id\":\"%s\"}",
        v->id, ts, (unsigned long long)wall_ms, vm_mode_name(v->mode), c->make, c->model,
        v->year, c->fuel, c->tank_l, v->index, drivers[v->driver], group,
        tyre_brands[v->make_model % 4], c->tyre_size, (v->make_model / 4) % 2 ? "winter" : "summer",
        front, front + (v->mode == VM_MODE_FLEET ? 0.8 : -0.1), v->odometer_km,
        client_id ? client_id : "");
    return fit(n, len);
}
