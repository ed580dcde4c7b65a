/* The sink task: reads its `input` stream to the end, checks every sample against what the
 * source wrote times FACTOR (its argument), and prints a summary. A wrong sample, or a frame
 * missing or out of order, exits with status 1: the runner then reports the sink as failed. */
#include "common.h"

#include <string.h>

int main(int argc, char **argv) {
    float factor = argc > 1 ? strtof(argv[1], NULL) : 2.0f;
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) die("sink", "shmline_task_join", s);
    /* Refuse to run on a stream that does not carry float32 frames of SAMPLES samples. */
    static const uint64_t shape[1] = {SAMPLES};
    shmline_reader_options opts = shmline_reader_options_default();
    opts.require_dtype = "<f4";
    opts.require_ndim = 1;
    opts.require_shape = shape;
    shmline_reader *input = NULL;
    s = shmline_task_reader(task, "input", &opts, &input);
    if (s != SHMLINE_OK) die("sink", "shmline_task_reader", s);

    static float samples[SAMPLES];
    double sum = 0;
    uint64_t frames = 0;
    for (;;) {
        shmline_frame_info info;
        s = shmline_reader_read(input, samples, sizeof samples, SHMLINE_TIMEOUT_INFINITE, &info);
        if (s == SHMLINE_END_OF_STREAM) break;
        if (s != SHMLINE_OK) die("sink", "shmline_reader_read", s);
        if (info.seq != frames || info.len != sizeof samples) {
            fprintf(stderr, "sink: frame %llu arrived as frame %llu of %u bytes\n",
                    (unsigned long long)frames, (unsigned long long)info.seq, info.len);
            return 1;
        }
        for (size_t i = 0; i < SAMPLES; i++) {
            if (samples[i] != sample(frames, i) * factor) {
                fprintf(stderr, "sink: frame %llu, sample %zu is %g, expected %g\n",
                        (unsigned long long)frames, i, samples[i], sample(frames, i) * factor);
                return 1;
            }
            sum += samples[i];
        }
        frames++;
    }
    printf("sink: %llu frames of %d samples, every one checked, sum %.1f\n",
           (unsigned long long)frames, SAMPLES, sum);
    shmline_reader_close(input);
    shmline_task_close(task);
    return 0;
}
