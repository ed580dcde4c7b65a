/* Cross-process test reader: reads a stream to its end, switching between copy, zero-copy and
 * batch reads every chunk, and checks that it got exactly frames 0..count-1 (see frames.h), each
 * byte, length, flag and sequence number, and then end of stream.
 *
 * Usage: reader STREAM_NAME FRAME_COUNT. Exit status 0 when every frame was right. */
#include "shmline.h"
#include "frames.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "reader: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

static int check(uint64_t expected, const shmline_frame_info *info, const void *data) {
    if (info->seq != expected || info->missed != 0 ||
        !frame_ok(expected, (const unsigned char *)data, info->len, info->flags)) {
        fprintf(stderr, "reader: frame %llu is wrong (seq %llu, len %u, flags %u, missed %llu)\n",
                (unsigned long long)expected, (unsigned long long)info->seq, info->len,
                info->flags, (unsigned long long)info->missed);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: reader STREAM_NAME FRAME_COUNT\n");
        return 2;
    }
    uint64_t count = strtoull(argv[2], NULL, 10);
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_open(argv[1], &stream);
    if (s != SHMLINE_OK) {
        return fail("open stream", s);
    }
    shmline_reader_options options = shmline_reader_options_default();
    options.wait = SHMLINE_WAIT_BLOCK;
    shmline_reader *reader = NULL;
    s = shmline_reader_open(stream, &options, &reader);
    if (s != SHMLINE_OK) {
        return fail("open reader", s);
    }
    static unsigned char buf[FRAMES_BATCH * FRAMES_MAX];
    shmline_frame_info infos[FRAMES_BATCH];
    uint64_t next = 0;
    while (next < count) {
        switch ((next / FRAMES_CHUNK) % 3) {
        case 0:
            s = shmline_reader_read(reader, buf, FRAMES_MAX, FRAMES_PATIENCE_NS, &infos[0]);
            if (s != SHMLINE_OK) {
                return fail("read", s);
            }
            if (!check(next, &infos[0], buf)) {
                return 1;
            }
            next++;
            break;
        case 1: {
            const void *data = NULL;
            s = shmline_reader_acquire(reader, FRAMES_PATIENCE_NS, &data, &infos[0]);
            if (s != SHMLINE_OK) {
                return fail("acquire", s);
            }
            if (!check(next, &infos[0], data)) {
                return 1;
            }
            s = shmline_reader_release(reader);
            if (s != SHMLINE_OK) {
                return fail("release", s);
            }
            next++;
            break;
        }
        default: {
            size_t n = 0, offset = 0;
            s = shmline_reader_read_batch(reader, buf, sizeof buf, infos, FRAMES_BATCH,
                                          FRAMES_PATIENCE_NS, &n);
            if (s != SHMLINE_OK) {
                return fail("read batch", s);
            }
            for (size_t k = 0; k < n; k++) {
                if (!check(next, &infos[k], buf + offset)) {
                    return 1;
                }
                offset += infos[k].len;
                next++;
            }
            break;
        }
        }
    }
    s = shmline_reader_read(reader, buf, FRAMES_MAX, FRAMES_PATIENCE_NS, &infos[0]);
    if (s != SHMLINE_END_OF_STREAM) {
        return fail("read after the last frame (expected END_OF_STREAM)", s);
    }
    shmline_reader_close(reader);
    shmline_stream_close(stream);
    printf("reader: read %llu frames\n", (unsigned long long)count);
    return 0;
}
