/* Waking a sleeping thread, from C: two threads hand a turn back and forth through a
   POSIX semaphore each.  Prints the microseconds per hand-over (one wake-up of a
   blocked thread and its running): the kernel's part of any thread wake-up, which no
   Python wait queue can go below.  Built and run by bench_wake.py. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>

enum { N = 20000 };
static sem_t mine, theirs;

static void *
other(void *unused)
{
    for (int i = 0; i < N; i++) {
        sem_wait(&theirs);
        sem_post(&mine);
    }
    return unused;
}

int
main(void)
{
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        pthread_t thread;
        struct timespec a, b;
        sem_init(&mine, 0, 0);
        sem_init(&theirs, 0, 0);
        if (pthread_create(&thread, NULL, other, NULL) != 0) {
            perror("wake_cost");
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < N; i++) {
            sem_post(&theirs);
            sem_wait(&mine);
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        pthread_join(thread, NULL);
        double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (2.0 * N) / 1e3;
        best = us < best ? us : best;
    }
    printf("%.4f\n", best);
    return 0;
}
