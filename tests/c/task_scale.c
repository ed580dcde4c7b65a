/* Pipeline test task: reads its parameter `input` to the end of the stream and writes every frame
 * scaled (pipeline_frames.h) to its parameter `out`, with zero-copy reads and writes. */
#include "pipeline_frames.h"

#include <string.h>

int main(void) {
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) {
        return pipeline_fail("scale", "join", s);
    }
    shmline_reader *input = NULL;
    shmline_writer *out = NULL;
    shmline_reader_options ropts = shmline_reader_options_default();
    ropts.wait = SHMLINE_WAIT_BLOCK;
    s = shmline_task_reader(task, "input", &ropts, &input);
    if (s != SHMLINE_OK) {
        return pipeline_fail("scale", "take reader input", s);
    }
    s = shmline_task_writer(task, "out", NULL, &out);
    if (s != SHMLINE_OK) {
        return pipeline_fail("scale", "take writer out", s);
    }
    /* Every handle is taken: the task handle is no longer needed. */
    shmline_task_close(task);
    for (;;) {
        const void *data = NULL;
        shmline_frame_info info;
        s = shmline_reader_acquire(input, PIPELINE_PATIENCE_NS, &data, &info);
        if (s == SHMLINE_END_OF_STREAM) {
            break;
        }
        if (s != SHMLINE_OK) {
            return pipeline_fail("scale", "acquire", s);
        }
        void *slot = NULL;
        size_t room = 0;
        s = shmline_writer_reserve(out, PIPELINE_PATIENCE_NS, &slot, &room);
        if (s != SHMLINE_OK) {
            return pipeline_fail("scale", "reserve", s);
        }
        if (room < info.len) {
            fprintf(stderr, "scale: a frame of %u bytes does not fit a slot of %zu\n", info.len,
                    room);
            return 1;
        }
        pipeline_scale((const unsigned char *)data, (unsigned char *)slot, info.len);
        s = shmline_writer_commit(out, info.len, info.flags);
        if (s == SHMLINE_OK) {
            s = shmline_reader_release(input);
        }
        if (s != SHMLINE_OK) {
            return pipeline_fail("scale", "commit and release", s);
        }
    }
    shmline_reader_close(input);
    shmline_writer_close(out);
    return 0;
}
