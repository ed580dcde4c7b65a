/* Cross-language test peer for the Python tests: writes or reads NumPy frames of the schema
 * "<u4" shape (4, 6) through the C API, and checks every element, sequence number and flag.
 *
 * Frame i: element k (flat, C order) is i * 1000003 + k * 7 (mod 2^32); its flags are i / 100
 * (its chunk of 100 frames, so that a batch of frames can share them).
 * test_xlang.py and examples/xlang_peer.rs compute the same frames.
 *
 * Usage: xlang_peer writer|reader STREAM_NAME FRAME_COUNT. The stream exists already; the writer
 * waits for one reader, writes the frames and closes the stream; the reader reads to the end of
 * the stream and checks it saw exactly FRAME_COUNT frames. Exit status 0 when all went right. */
#include "shmline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELEMENTS 24
#define PATIENCE_NS (60LL * 1000 * 1000 * 1000)

static uint32_t element(uint64_t i, uint32_t k) {
    return (uint32_t)(i * 1000003u + k * 7u);
}

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "xlang_peer: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

static int run_writer(shmline_stream *stream, uint64_t count) {
    shmline_writer *writer = NULL;
    int32_t s = shmline_writer_open(stream, NULL, &writer);
    if (s != SHMLINE_OK) {
        return fail("open writer", s);
    }
    s = shmline_writer_wait_for_readers(writer, 1, PATIENCE_NS);
    if (s != SHMLINE_OK) {
        return fail("wait for a reader", s);
    }
    uint32_t frame[ELEMENTS];
    for (uint64_t i = 0; i < count; i++) {
        for (uint32_t k = 0; k < ELEMENTS; k++) {
            frame[k] = element(i, k);
        }
        s = shmline_writer_write(writer, frame, sizeof frame, (uint32_t)(i / 100), PATIENCE_NS);
        if (s != SHMLINE_OK) {
            return fail("write", s);
        }
    }
    shmline_writer_close(writer);
    printf("xlang_peer: wrote %llu frames\n", (unsigned long long)count);
    return 0;
}

static int run_reader(shmline_stream *stream, uint64_t count) {
    shmline_reader_options opts = shmline_reader_options_default();
    uint64_t shape[2] = {4, 6};
    opts.require_dtype = "<u4";
    opts.require_ndim = 2;
    opts.require_shape = shape;
    shmline_reader *reader = NULL;
    int32_t s = shmline_reader_open(stream, &opts, &reader);
    if (s != SHMLINE_OK) {
        return fail("open reader", s);
    }
    printf("xlang_peer: reader ready\n");
    fflush(stdout);
    uint32_t frame[ELEMENTS];
    shmline_frame_info info;
    uint64_t i = 0;
    for (;;) {
        s = shmline_reader_read(reader, frame, sizeof frame, PATIENCE_NS, &info);
        if (s == SHMLINE_END_OF_STREAM) {
            break;
        }
        if (s != SHMLINE_OK) {
            return fail("read", s);
        }
        int ok = info.seq == i && info.len == sizeof frame && info.flags == (uint32_t)(i / 100);
        for (uint32_t k = 0; ok && k < ELEMENTS; k++) {
            ok = frame[k] == element(i, k);
        }
        if (!ok) {
            fprintf(stderr, "xlang_peer: frame %llu is wrong (seq %llu, len %u, flags %u)\n",
                    (unsigned long long)i, (unsigned long long)info.seq, info.len, info.flags);
            return 1;
        }
        i++;
    }
    if (i != count) {
        fprintf(stderr, "xlang_peer: read %llu frames, expected %llu\n", (unsigned long long)i,
                (unsigned long long)count);
        return 1;
    }
    shmline_reader_close(reader);
    printf("xlang_peer: read %llu frames\n", (unsigned long long)count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "writer") != 0 && strcmp(argv[1], "reader") != 0)) {
        fprintf(stderr, "usage: xlang_peer writer|reader STREAM_NAME FRAME_COUNT\n");
        return 2;
    }
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_open(argv[2], &stream);
    if (s != SHMLINE_OK) {
        return fail("open stream", s);
    }
    uint64_t count = strtoull(argv[3], NULL, 10);
    int rc = strcmp(argv[1], "writer") == 0 ? run_writer(stream, count) : run_reader(stream, count);
    shmline_stream_close(stream);
    return rc;
}
