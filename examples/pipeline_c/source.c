/* The source task: writes FRAMES frames (environment; default 1000) of SAMPLES floats to its
 * `out` parameter, filling each frame in place in shared memory (zero copy). */
#include "common.h"

int main(void) {
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task); /* SHMLINE_PIPELINE, SHMLINE_TASK */
    if (s != SHMLINE_OK) die("source", "shmline_task_join", s);
    shmline_writer *out = NULL;
    s = shmline_task_writer(task, "out", NULL, &out);
    if (s != SHMLINE_OK) die("source", "shmline_task_writer", s);
    shmline_task_close(task); /* every handle is taken */

    const char *frames_env = getenv("FRAMES");
    uint64_t frames = frames_env ? strtoull(frames_env, NULL, 10) : 1000;
    for (uint64_t f = 0; f < frames; f++) {
        void *slot = NULL;
        size_t room = 0;
        /* Waits while the slowest reader is a whole ring behind: nothing is ever dropped. */
        s = shmline_writer_reserve(out, SHMLINE_TIMEOUT_INFINITE, &slot, &room);
        if (s != SHMLINE_OK) die("source", "shmline_writer_reserve", s);
        float *samples = slot;
        for (size_t i = 0; i < SAMPLES; i++) samples[i] = sample(f, i);
        s = shmline_writer_commit(out, SAMPLES * sizeof(float), 0);
        if (s != SHMLINE_OK) die("source", "shmline_writer_commit", s);
    }
    /* Closing the writer ends the stream (the runner would do it when we exit, too). */
    shmline_writer_close(out);
    return 0;
}
