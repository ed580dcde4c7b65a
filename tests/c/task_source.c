/* Pipeline test task: joins its pipeline (SHMLINE_PIPELINE, SHMLINE_TASK) and writes FRAMES
 * frames (default 1000, see pipeline_frames.h) to its parameter `out`, then exits 0: the runner
 * ends the stream. Every other exit status is a failure the runner reports. */
#include "pipeline_frames.h"

int main(void) {
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) {
        return pipeline_fail("source", "join", s);
    }
    shmline_writer *out = NULL;
    s = shmline_task_writer(task, "out", NULL, &out);
    if (s != SHMLINE_OK) {
        return pipeline_fail("source", "take writer out", s);
    }
    uint64_t frames = pipeline_env("FRAMES", 1000);
    unsigned char frame[PIPELINE_FRAME];
    for (uint64_t seq = 0; seq < frames; seq++) {
        pipeline_payload(seq, frame);
        s = shmline_writer_write(out, frame, sizeof frame, 0, PIPELINE_PATIENCE_NS);
        if (s != SHMLINE_OK) {
            return pipeline_fail("source", "write", s);
        }
    }
    shmline_writer_close(out);
    shmline_task_close(task);
    return 0;
}
