/* sim_options: telesim's command line, parsed and validated from one table.
 *
 * Every option is a row (name, kind, field, min, max, help); numbers are range-checked
 * with a message naming the option, so main() only has to print the error and exit 2.
 * Pure; main thread. */
#ifndef TELESIM_SIM_OPTIONS_H
#define TELESIM_SIM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_MAX_VEHICLES 100000
#define SIM_MAX_CONNECTIONS 1024

enum sim_mode { SIM_MODE_PERSONAL, SIM_MODE_FLEET, SIM_MODE_MIXED };

struct sim_options {
    long vehicles;
    double rate;            /* telemetry messages per vehicle per second */
    double duration;        /* seconds; 0 = until SIGINT/SIGTERM */
    enum sim_mode mode;
    uint64_t seed;
    bool seed_set;
    char host[256];
    long port;
    char username[128];
    char password[128];
    long qos;
    long protocol;          /* 311 or 5 */
    char id_prefix[24];
    double anomaly_rate;    /* per vehicle per second */
    unsigned anomaly_mask;  /* 1u << enum vm_anomaly; from --anomaly */
    bool anomaly_forced;    /* --anomaly given: each vehicle starts the first one at once */
    long connections;
    bool session;
    bool commands;          /* answer commands on vehicle/<id>/cmd/+ (command.h) */
    long fleet_groups;
    bool quiet;
    bool help;
    bool version;           /* --version: print it and exit */
};

/* Fills defaults, then parses argv. Returns 0 on success (opts->help set when --help was
 * asked for), or -1 with a one-line message in err. Resets getopt, so it may be called
 * again (tests do). */
int sim_options_parse(struct sim_options *opts, int argc, char **argv, char *err, size_t errlen);

/* Prints the usage text to 'out' (a FILE *, void here to keep stdio out of the header). */
void sim_options_usage(void *out, const char *argv0);

#endif
