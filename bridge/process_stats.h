/* process_stats: this process's CPU time, memory, descriptors and start time, read from
 * /proc (Linux), for the process_* metrics. Any thread; no state. */
#ifndef TB_PROCESS_STATS_H
#define TB_PROCESS_STATS_H

struct process_stats {
    double cpu_seconds;         /* user + system */
    double rss_bytes, vsize_bytes;
    double open_fds, max_fds;   /* max_fds: the soft RLIMIT_NOFILE */
    double start_time_seconds;  /* Unix time */
};

/* Fills *out; returns 0, or -1 when /proc could not be read (then *out is unspecified). */
int process_stats_read(struct process_stats *out);

/* Parses the text of /proc/self/stat (exposed for tests): utime, stime, starttime (clock
 * ticks since boot), vsize (bytes) and rss (pages). Returns 0, or -1 when malformed. */
int process_stats_parse_stat(const char *text, unsigned long long *utime, unsigned long long *stime,
                             unsigned long long *starttime, unsigned long long *vsize, long long *rss);

#endif
