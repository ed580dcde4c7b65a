/* What the three tasks of the example share: the frame shape, the value of each sample, and how
 * a task reports a failed call before exiting with status 1 (which makes the runner stop the
 * pipeline and name the task). */
#ifndef PIPELINE_C_COMMON_H
#define PIPELINE_C_COMMON_H

#include <shmline.h>

#include <stdio.h>
#include <stdlib.h>

/* Samples per frame: every frame of both streams is a float32 array of this shape. */
#define SAMPLES 256

/* Sample i of frame `frame`, as the source writes it. */
static inline float sample(uint64_t frame, size_t i) {
    return (float)((frame + i) % 1000) * 0.5f;
}

/* Prints the failed call with the library's message and exits the task with status 1. */
static inline void die(const char *task, const char *call, int32_t status) {
    fprintf(stderr, "%s: %s: %s: %s\n", task, call, shmline_status_str(status),
            shmline_last_error_message());
    exit(1);
}

#endif
