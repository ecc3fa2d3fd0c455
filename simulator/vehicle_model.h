/* vehicle_model: one simulated vehicle, stepped in simulated time.
 *
 * Why: telesim must produce telemetry that looks like a real car on a dashboard and that
 * trips the example alert rules only when asked to. The model is a small state machine
 * (stop -> accelerate -> cruise -> brake) driving speed; everything else is derived from
 * it: gear from speed, rpm from speed and gear, engine temperature warming towards a
 * load-dependent set point, oil pressure from rpm and oil temperature, fuel burnt per
 * distance and idle time, position advanced along the heading by the distance driven.
 * Anomalies temporarily override one signal with a scripted excursion that crosses the
 * alert threshold clearly and for long enough, then recovers past the clear threshold.
 *
 * Values depend only on (seed, vehicle index, number and size of steps): the model never
 * reads a clock. The caller supplies wall time only when formatting JSON, so timing and
 * value generation are separate and the model is testable. Pure; a vehicle is touched by
 * one thread at a time (telesim's main thread). */
#ifndef TELESIM_VEHICLE_MODEL_H
#define TELESIM_VEHICLE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "prng.h"

enum vm_mode { VM_MODE_PERSONAL, VM_MODE_FLEET };

enum vm_anomaly {
    VM_ANOMALY_NONE = 0,
    VM_ANOMALY_OVERHEAT,
    VM_ANOMALY_LOW_BATTERY,
    VM_ANOMALY_LOW_OIL_PRESSURE,
    VM_ANOMALY_HARSH_BRAKING,
    VM_ANOMALY_COUNT
};

enum vm_phase { VM_PHASE_STOP, VM_PHASE_ACCEL, VM_PHASE_CRUISE, VM_PHASE_BRAKE };

/* Thresholds of the example alert rules; normal driving stays clear of them and
 * anomalies cross them. Tests check both against these numbers. */
#define VM_TEMP_ALERT 110.0        /* > for 5 s; clears < 100 */
#define VM_TEMP_CLEAR 100.0
#define VM_BATTERY_ALERT 15.0      /* < ; clears > 20 */
#define VM_BATTERY_CLEAR 20.0
#define VM_OIL_ALERT 1.0           /* < for 3 s; clears > 1.5 */
#define VM_OIL_CLEAR 1.5
#define VM_BRAKE_ALERT (-6.0)      /* acceleration < -6 m/s^2 */
#define VM_SPEED_ALERT 130.0       /* > for 10 s */

/* Shared by all vehicles of a run (not owned by them). */
struct vm_config {
    double anomaly_rate;  /* probability per vehicle per simulated second of a random anomaly */
    unsigned anomaly_mask; /* bit (1u << enum vm_anomaly) allowed for random anomalies */
};

struct vehicle {
    char id[48];
    enum vm_mode mode;
    uint32_t index;
    uint32_t group;              /* fleet group number, 1-based (0: none) */
    const struct vm_config *cfg; /* borrowed */
    struct prng rng;

    /* identity (for the setup message) */
    uint16_t make_model;         /* index into the catalogue */
    uint16_t driver;
    uint16_t year;
    double tank_l;               /* fuel tank capacity */
    double final_drive;

    /* driving state */
    enum vm_phase phase;
    double phase_left_s;         /* stop / cruise time remaining */
    double target_kmh;
    double accel_cmd;            /* commanded acceleration in ACCEL/BRAKE, m/s^2 */
    double t_s;                  /* simulated seconds since start */

    /* published signals */
    double speed_kmh;
    double accel_ms2;
    int gear;                    /* 0 = neutral (stopped), 1..6 */
    double rpm;
    double engine_temp_c;
    double oil_bar;
    double batt_v;
    double batt_level;
    double fuel_l;
    double fuel_consumption;     /* instantaneous, L/100 km (0 when stopped) */
    double lat, lon, heading;
    double odometer_km;
    double home_lat, home_lon;   /* trips bend back towards home beyond ~15 km */
    double ambient_c;

    /* anomaly script */
    enum vm_anomaly anomaly;
    int anomaly_stage;           /* 0 = onset, 1 = hold, 2 = recovery */
    double anomaly_t;            /* seconds in the current stage */
    double anomaly_level;        /* peak / floor the anomaly drives its signal to */
    double anomaly_hold_s;       /* how long the signal stays past the threshold */
    double batt_level_before;    /* level to recover to after low_battery */
    uint32_t refuels;            /* count, for tests */
    uint32_t anomalies;          /* anomalies started so far */
};

/* Initialises a vehicle: identity, starting position and state from (seed, index).
 * 'id' is copied; 'cfg' is borrowed and must outlive the vehicle. */
void vehicle_init(struct vehicle *v, uint64_t seed, uint32_t index, const char *id,
                  enum vm_mode mode, uint32_t group, const struct vm_config *cfg);

/* Advances the model by dt simulated seconds (0 < dt <= 10). */
void vehicle_step(struct vehicle *v, double dt);

/* Starts an anomaly now; returns 0, or -1 when another one is still running. */
int vehicle_start_anomaly(struct vehicle *v, enum vm_anomaly a);

/* "overheat", ...; NULL for NONE. Parse returns VM_ANOMALY_NONE on an unknown name. */
const char *vm_anomaly_name(enum vm_anomaly a);
enum vm_anomaly vm_anomaly_parse(const char *name, size_t len);
const char *vm_mode_name(enum vm_mode m);

/* Formats wall time as ISO-8601 UTC with milliseconds ("2026-11-22T01:02:03.456Z"). */
void vm_format_time(uint64_t wall_ms, char out[32]);

/* Telemetry JSON (the documented schema) into buf. 'session_id' adds a "session_id"
 * field when not NULL. Returns the length, or -1 when buf is too small. */
int vehicle_telemetry_json(const struct vehicle *v, uint64_t wall_ms, const char *session_id,
                           char *buf, size_t len);
/* Setup JSON (make, model, driver, tyres, ...); 'client_id' names the MQTT connection that
 * carries the vehicle (may be NULL). Returns the length, or -1 when buf is too small. */
int vehicle_setup_json(const struct vehicle *v, uint64_t wall_ms, const char *client_id,
                       char *buf, size_t len);

#endif
