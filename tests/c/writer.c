/* Cross-process test writer: writes frames 0..count-1 (see frames.h) to an existing stream, once
 * a reader is attached, switching between copy, zero-copy and batch writes every chunk, then
 * closes the stream (end of stream).
 *
 * Usage: writer STREAM_NAME FRAME_COUNT. Exit status 0 when every frame was written. */
#include "shmline.h"
#include "frames.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "writer: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: writer STREAM_NAME FRAME_COUNT\n");
        return 2;
    }
    uint64_t count = strtoull(argv[2], NULL, 10);
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_open(argv[1], &stream);
    if (s != SHMLINE_OK) {
        return fail("open stream", s);
    }
    shmline_writer *writer = NULL;
    s = shmline_writer_open(stream, NULL, &writer);
    if (s != SHMLINE_OK) {
        return fail("open writer", s);
    }
    /* The writer may outlive the stream handle. */
    shmline_stream_close(stream);
    s = shmline_writer_wait_for_readers(writer, 1, FRAMES_PATIENCE_NS);
    if (s != SHMLINE_OK) {
        return fail("wait for a reader", s);
    }
    static unsigned char batch[FRAMES_BATCH * FRAMES_MAX];
    size_t lens[FRAMES_BATCH];
    uint64_t i = 0;
    while (i < count) {
        switch ((i / FRAMES_CHUNK) % 3) {
        case 0: {
            unsigned char frame[FRAMES_MAX];
            frame_fill(i, frame);
            s = shmline_writer_write(writer, frame, frame_len(i), frame_flags(i),
                                     FRAMES_PATIENCE_NS);
            if (s != SHMLINE_OK) {
                return fail("write", s);
            }
            i++;
            break;
        }
        case 1: {
            void *slot = NULL;
            size_t capacity = 0;
            s = shmline_writer_reserve(writer, FRAMES_PATIENCE_NS, &slot, &capacity);
            if (s != SHMLINE_OK) {
                return fail("reserve", s);
            }
            if (capacity < frame_len(i)) {
                fprintf(stderr, "writer: reserved %zu bytes, need %zu\n", capacity, frame_len(i));
                return 1;
            }
            frame_fill(i, (unsigned char *)slot);
            s = shmline_writer_commit(writer, frame_len(i), frame_flags(i));
            if (s != SHMLINE_OK) {
                return fail("commit", s);
            }
            i++;
            break;
        }
        default: {
            uint64_t chunk_end = (i / FRAMES_CHUNK + 1) * FRAMES_CHUNK;
            uint64_t end = i + FRAMES_BATCH;
            if (end > chunk_end) {
                end = chunk_end;
            }
            if (end > count) {
                end = count;
            }
            size_t n = 0, offset = 0;
            for (uint64_t k = i; k < end; k++, n++) {
                lens[n] = frame_len(k);
                frame_fill(k, batch + offset);
                offset += lens[n];
            }
            size_t done = 0;
            while (done < n) {
                size_t skip = 0;
                for (size_t k = 0; k < done; k++) {
                    skip += lens[k];
                }
                size_t written = 0;
                s = shmline_writer_write_batch(writer, batch + skip, lens + done, n - done,
                                               frame_flags(i), FRAMES_PATIENCE_NS, &written);
                if (s != SHMLINE_OK) {
                    return fail("write batch", s);
                }
                done += written;
            }
            i += n;
            break;
        }
        }
    }
    uint64_t position = 0;
    s = shmline_writer_position(writer, &position);
    if (s != SHMLINE_OK || position != count) {
        fprintf(stderr, "writer: position %llu after %llu frames\n",
                (unsigned long long)position, (unsigned long long)count);
        return 1;
    }
    shmline_writer_close(writer);
    printf("writer: wrote %llu frames\n", (unsigned long long)count);
    return 0;
}
