/* process_stats: /proc/self/stat, /proc/stat (boot time) and /proc/self/fd; see process_stats.h. */
#include "process_stats.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int process_stats_parse_stat(const char *text, unsigned long long *utime, unsigned long long *stime,
                             unsigned long long *starttime, unsigned long long *vsize, long long *rss)
{
    /* The command name (field 2) is in parentheses and may hold spaces or ')': the
     * fields after it start after the last ')'. Field 3 (state) comes next. */
    const char *p = text ? strrchr(text, ')') : NULL;
    if (!p)
        return -1;
    char state;
    int n = sscanf(p + 1,
                   " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                   &state, utime, stime, starttime, vsize, rss);
    return n == 6 ? 0 : -1;
}

static int read_small_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? 0 : -1;
}

static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long btime = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return (double)btime;
}

static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* not counting the descriptor opendir itself holds */
}

int process_stats_read(struct process_stats *out)
{
    char buf[1024];
    unsigned long long ut, st, start, vsize;
    long long rss;
    if (read_small_file("/proc/self/stat", buf, sizeof buf) || process_stats_parse_stat(buf, &ut, &st, &start, &vsize, &rss))
        return -1;
    double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    if (tick <= 0)
        tick = 100;
    out->cpu_seconds = (double)(ut + st) / tick;
    out->vsize_bytes = (double)vsize;
    out->rss_bytes = (double)rss * page;
    out->start_time_seconds = boot_time() + (double)start / tick;
    out->open_fds = count_fds();
    struct rlimit rl;
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (double)rl.rlim_cur : 0;
    return 0;
}
