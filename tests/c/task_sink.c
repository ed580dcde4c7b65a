/* Pipeline test task: reads its parameter `input` to the end of the stream and checks every
 * frame: FRAMES frames (default 1000), in order, none missing, each equal to the source's frame
 * scaled SCALED times (default 1; pipeline_frames.h). Exits 1 at the first mismatch, naming it. */
#include "pipeline_frames.h"

#include <string.h>

int main(void) {
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) {
        return pipeline_fail("sink", "join", s);
    }
    shmline_reader *input = NULL;
    s = shmline_task_reader(task, "input", NULL, &input);
    if (s != SHMLINE_OK) {
        return pipeline_fail("sink", "take reader input", s);
    }
    uint64_t frames = pipeline_env("FRAMES", 1000);
    uint64_t scaled = pipeline_env("SCALED", 1);
    uint64_t count = 0;
    unsigned char frame[PIPELINE_FRAME], expected[PIPELINE_FRAME];
    for (;;) {
        shmline_frame_info info;
        s = shmline_reader_read(input, frame, sizeof frame, PIPELINE_PATIENCE_NS, &info);
        if (s == SHMLINE_END_OF_STREAM) {
            break;
        }
        if (s != SHMLINE_OK) {
            return pipeline_fail("sink", "read", s);
        }
        pipeline_payload(count, expected);
        for (uint64_t k = 0; k < scaled; k++) {
            pipeline_scale(expected, expected, sizeof expected);
        }
        if (info.seq != count || info.len != sizeof frame ||
            memcmp(frame, expected, sizeof frame) != 0) {
            fprintf(stderr, "sink: frame %llu (seq %llu, %u bytes) is not the expected one\n",
                    (unsigned long long)count, (unsigned long long)info.seq, info.len);
            return 1;
        }
        count++;
    }
    if (count != frames) {
        fprintf(stderr, "sink: %llu frames arrived, expected %llu\n", (unsigned long long)count,
                (unsigned long long)frames);
        return 1;
    }
    printf("sink verified %llu frames\n", (unsigned long long)count);
    shmline_reader_close(input);
    shmline_task_close(task);
    return 0;
}
