/* The scale task: multiplies every sample of its `input` stream by FACTOR (its argument) into its
 * `out` stream, until the input ends. Reads in place (zero copy) and writes in place. */
#include "common.h"

int main(int argc, char **argv) {
    float factor = argc > 1 ? strtof(argv[1], NULL) : 2.0f;
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) die("scale", "shmline_task_join", s);
    shmline_reader *input = NULL;
    shmline_writer *out = NULL;
    s = shmline_task_reader(task, "input", NULL, &input);
    if (s != SHMLINE_OK) die("scale", "shmline_task_reader", s);
    s = shmline_task_writer(task, "out", NULL, &out);
    if (s != SHMLINE_OK) die("scale", "shmline_task_writer", s);
    shmline_task_close(task);

    for (;;) {
        const void *frame = NULL;
        shmline_frame_info info;
        s = shmline_reader_acquire(input, SHMLINE_TIMEOUT_INFINITE, &frame, &info);
        if (s == SHMLINE_END_OF_STREAM) break; /* the source finished and we read everything */
        if (s != SHMLINE_OK) die("scale", "shmline_reader_acquire", s);
        void *slot = NULL;
        size_t room = 0;
        s = shmline_writer_reserve(out, SHMLINE_TIMEOUT_INFINITE, &slot, &room);
        if (s != SHMLINE_OK) die("scale", "shmline_writer_reserve", s);
        const float *in = frame;
        float *scaled = slot;
        for (size_t i = 0; i < info.len / sizeof(float); i++) scaled[i] = in[i] * factor;
        s = shmline_writer_commit(out, info.len, info.flags);
        if (s != SHMLINE_OK) die("scale", "shmline_writer_commit", s);
        s = shmline_reader_release(input); /* the source may reuse the slot now */
        if (s != SHMLINE_OK) die("scale", "shmline_reader_release", s);
    }
    shmline_reader_close(input);
    shmline_writer_close(out); /* ends our stream: the sink drains it and finishes */
    return 0;
}
