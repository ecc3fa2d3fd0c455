/* send-floor: what one send() of a small frame costs on this machine, with nothing else
 * around it. It measures the floor under the "CPU per delivered frame" of any bridge that
 * writes one frame per send() (fan-out to clients that each get one frame per message).
 *
 * N TCP connections over 127.0.0.1 (this process holds both ends). A reader thread drains
 * the client ends with epoll + recv, like tb-wsload. The main thread sends B-byte buffers
 * to the server ends in bursts of --burst connections (round-robin), sleeping --gap-us
 * between bursts, like a bridge fanning one MQTT message out to one room. Prints one JSON
 * line: the sending thread's CPU time per send() (CLOCK_THREAD_CPUTIME_ID, kernel time
 * included), with --poll also a poll(POLLOUT) before each send as Telebridge does.
 *
 *   send-floor [--conns 2000] [--burst 200] [--gap-us 2000] [--sends 1000000]
 *              [--bytes 420] [--poll]
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int n_conns = 2000, burst = 200, gap_us = 2000, bytes = 420, use_poll;
static long n_sends = 1000000;
static int *srv_fd, *cli_fd;
static volatile long received_bytes;
static volatile int reader_done;

static uint64_t cpu_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "send-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *reader(void *arg)
{
    long want = *(long *)arg;
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < n_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cli_fd[i], &ev) != 0)
            die("epoll_ctl");
    }
    static char buf[1 << 20];
    struct epoll_event evs[512];
    long got = 0;
    while (got < want) {
        int n = epoll_wait(ep, evs, 512, 1000);
        for (int i = 0; i < n; i++) {
            ssize_t r = recv(cli_fd[evs[i].data.u32], buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0)
                got += r;
        }
    }
    received_bytes = got;
    reader_done = 1;
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"conns", 1, 0, 'c'}, {"burst", 1, 0, 'b'}, {"gap-us", 1, 0, 'g'},
        {"sends", 1, 0, 's'}, {"bytes", 1, 0, 'B'}, {"poll", 0, 0, 'p'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (o) {
        case 'c': n_conns = atoi(optarg); break;
        case 'b': burst = atoi(optarg); break;
        case 'g': gap_us = atoi(optarg); break;
        case 's': n_sends = atol(optarg); break;
        case 'B': bytes = atoi(optarg); break;
        case 'p': use_poll = 1; break;
        default:
            fprintf(stderr, "usage: send-floor [--conns N] [--burst N] [--gap-us US] "
                            "[--sends N] [--bytes N] [--poll]\n");
            return 2;
        }
    }
    if (n_conns < 1 || burst < 1 || bytes < 1 || n_sends < 1 || gap_us < 0) {
        fprintf(stderr, "send-floor: every size must be positive\n");
        return 2;
    }
    srv_fd = calloc((size_t)n_conns, sizeof *srv_fd);
    cli_fd = calloc((size_t)n_conns, sizeof *cli_fd);
    char *payload = malloc((size_t)bytes);
    if (!srv_fd || !cli_fd || !payload)
        die("malloc");
    memset(payload, 'x', (size_t)bytes);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&a, &al))
        die("listen");
    int one = 1;
    for (int i = 0; i < n_conns; i++) {
        cli_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (cli_fd[i] < 0 || connect(cli_fd[i], (struct sockaddr *)&a, sizeof a))
            die("connect");
        srv_fd[i] = accept(lfd, NULL, NULL);
        if (srv_fd[i] < 0)
            die("accept");
        setsockopt(srv_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    long want = n_sends * bytes;
    pthread_t rt;
    if (pthread_create(&rt, NULL, reader, &want) != 0)
        die("pthread_create");

    uint64_t cpu0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), wall0 = cpu_ns(CLOCK_MONOTONIC);
    long sent = 0, polls_busy = 0;
    int next = 0;
    while (sent < n_sends) {
        for (int k = 0; k < burst && sent < n_sends; k++, sent++) {
            int fd = srv_fd[next];
            next = (next + 1) % n_conns;
            if (use_poll) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                if (poll(&p, 1, 0) != 1)
                    polls_busy++;
            }
            const char *at = payload;
            size_t left = (size_t)bytes;
            while (left) { /* blocking socket: a full one waits for the reader */
                ssize_t r = send(fd, at, left, MSG_NOSIGNAL);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0)
                    die("send");
                at += r;
                left -= (size_t)r;
            }
        }
        if (gap_us) {
            struct timespec ts = {gap_us / 1000000, (long)(gap_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    uint64_t cpu1 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), wall1 = cpu_ns(CLOCK_MONOTONIC);
    pthread_join(rt, NULL);
    printf("{\"conns\": %d, \"burst\": %d, \"gap_us\": %d, \"bytes\": %d, \"sends\": %ld, "
           "\"poll\": %s, \"sender_cpu_us_per_send\": %.3f, \"wall_s\": %.2f, "
           "\"received_bytes\": %ld, \"polls_not_writable\": %ld}\n",
           n_conns, burst, gap_us, bytes, sent, use_poll ? "true" : "false",
           (double)(cpu1 - cpu0) / 1e3 / (double)sent, (double)(wall1 - wall0) / 1e9,
           received_bytes, polls_busy);
    for (int i = 0; i < n_conns; i++) {
        close(srv_fd[i]);
        close(cli_fd[i]);
    }
    close(lfd);
    free(srv_fd);
    free(cli_fd);
    free(payload);
    return reader_done ? 0 : 1;
}
