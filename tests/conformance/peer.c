/* The C peer of the conformance matrix (tests/conformance/README.md has the command line, the
 * frames and the digest, which every language's peer shares). Streams and events through the
 * C API of include/shmline.h. */
#include "shmline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATIENCE_NS (60LL * 1000 * 1000 * 1000)
#define CAPACITY 16
#define F32_ELEMENTS 256
#define F32_FRAME (F32_ELEMENTS * 4)
#define BYTES_MAX 1000
#define FRAME_MAX F32_FRAME /* the larger of the two kinds */

/* ---- The frames, the digest and the command line: the same in every peer. ---- */

enum kind { F32, BYTES };

static uint32_t frame_flags(uint64_t i) {
    return (uint32_t)(i * 2654435761u);
}

/* Writes frame `i` of `kind` into `out` (room for FRAME_MAX bytes) and returns its length. */
static size_t fill_frame(enum kind kind, uint64_t i, unsigned char *out) {
    if (kind == F32) {
        for (uint64_t k = 0; k < F32_ELEMENTS; k++) {
            int64_t n = (int64_t)((i * 256 + k) % (1u << 24)) - (1 << 23);
            float value = (float)n / 256.0f;
            memcpy(out + 4 * k, &value, 4); /* little-endian hosts only, as documented */
        }
        return F32_FRAME;
    }
    size_t len = (size_t)((i * 7919) % (BYTES_MAX + 1));
    for (size_t j = 0; j < len; j++) {
        out[j] = (unsigned char)(i * 131 + j * 7 + (j >> 8) * 13);
    }
    return len;
}

static uint32_t crc32_table[256];

static void crc32_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int b = 0; b < 8; b++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc32_table[n] = c;
    }
}

static uint32_t crc32(const unsigned char *data, size_t len) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t j = 0; j < len; j++) {
        c = crc32_table[(c ^ data[j]) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

static uint64_t digest_word(uint64_t h, uint64_t word) {
    return (h ^ word) * 0x100000001b3u;
}

static uint64_t digest_frame(uint64_t h, uint64_t seq, uint32_t flags, const unsigned char *data,
                             size_t len) {
    h = digest_word(h, seq);
    h = digest_word(h, flags);
    h = digest_word(h, len);
    return digest_word(h, crc32(data, len));
}

#define DIGEST_START 0xcbf29ce484222325u

struct args {
    const char *command;
    const char *stream;
    const char *event;
    enum kind kind;
    int zero_copy;
    int counting;
    uint64_t count; /* --frames or --count */
};

static int usage(void) {
    fprintf(stderr,
            "usage: peer write|read --stream NAME --kind f32|bytes --path copy|zero --frames N\n"
            "       peer set-event|wait-event --event NAME --mode flag|counting --count K\n");
    return 2;
}

/* Parses the command line into `a`; returns 0, or 2 after printing the usage. */
static int parse(int argc, char **argv, struct args *a) {
    memset(a, 0, sizeof *a);
    if (argc < 2 || argc % 2 != 0) {
        return usage();
    }
    a->command = argv[1];
    int streams = strcmp(a->command, "write") == 0 || strcmp(a->command, "read") == 0;
    int events = strcmp(a->command, "set-event") == 0 || strcmp(a->command, "wait-event") == 0;
    if (!streams && !events) {
        return usage();
    }
    const char *kind = NULL, *path = NULL, *mode = NULL, *count = NULL;
    for (int k = 2; k < argc; k += 2) {
        const char *key = argv[k], *value = argv[k + 1];
        if (strcmp(key, "--stream") == 0) {
            a->stream = value;
        } else if (strcmp(key, "--event") == 0) {
            a->event = value;
        } else if (strcmp(key, "--kind") == 0) {
            kind = value;
        } else if (strcmp(key, "--path") == 0) {
            path = value;
        } else if (strcmp(key, "--mode") == 0) {
            mode = value;
        } else if (strcmp(key, "--frames") == 0 || strcmp(key, "--count") == 0) {
            count = value;
        } else {
            return usage();
        }
    }
    if (count == NULL) {
        return usage();
    }
    char *end = NULL;
    a->count = strtoull(count, &end, 10);
    if (*count == '\0' || *end != '\0') {
        return usage();
    }
    if (streams) {
        if (a->stream == NULL || kind == NULL || path == NULL) {
            return usage();
        }
        if (strcmp(kind, "f32") != 0 && strcmp(kind, "bytes") != 0) {
            return usage();
        }
        if (strcmp(path, "copy") != 0 && strcmp(path, "zero") != 0) {
            return usage();
        }
        a->kind = strcmp(kind, "f32") == 0 ? F32 : BYTES;
        a->zero_copy = strcmp(path, "zero") == 0;
        return 0;
    }
    if (a->event == NULL || mode == NULL ||
        (strcmp(mode, "flag") != 0 && strcmp(mode, "counting") != 0)) {
        return usage();
    }
    a->counting = strcmp(mode, "counting") == 0;
    return 0;
}

/* ---- The roles. ---- */

static int fail(const char *what, int32_t status) {
    fprintf(stderr, "c peer: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

static int write_frames(const struct args *a) {
    uint64_t shape[1] = {F32_ELEMENTS};
    shmline_stream_options opts = shmline_stream_options_default();
    opts.capacity = CAPACITY;
    opts.unlink_on_close = 1;
    if (a->kind == F32) {
        opts.dtype = "<f4";
        opts.ndim = 1;
        opts.shape = shape;
    } else {
        opts.max_frame_size = BYTES_MAX;
        opts.checksum = 1;
    }
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_create(a->stream, &opts, &stream);
    if (s != SHMLINE_OK) {
        return fail("create the stream", s);
    }
    shmline_writer *writer = NULL;
    s = shmline_writer_open(stream, NULL, &writer);
    shmline_stream_close(stream); /* the writer keeps it mapped */
    if (s != SHMLINE_OK) {
        return fail("open the writer", s);
    }
    printf("ready\n");
    fflush(stdout);
    s = shmline_writer_wait_for_readers(writer, 1, PATIENCE_NS);
    if (s != SHMLINE_OK) {
        shmline_writer_close(writer);
        return fail("wait for a reader", s);
    }
    unsigned char frame[FRAME_MAX];
    uint64_t digest = DIGEST_START;
    for (uint64_t i = 0; i < a->count; i++) {
        const unsigned char *data = frame;
        size_t len;
        if (a->zero_copy) {
            void *slot = NULL;
            size_t capacity = 0;
            s = shmline_writer_reserve(writer, PATIENCE_NS, &slot, &capacity);
            if (s != SHMLINE_OK) {
                shmline_writer_close(writer);
                return fail("reserve", s);
            }
            len = fill_frame(a->kind, i, slot);
            data = slot;
            digest = digest_frame(digest, i, frame_flags(i), data, len);
            s = shmline_writer_commit(writer, len, frame_flags(i));
        } else {
            len = fill_frame(a->kind, i, frame);
            digest = digest_frame(digest, i, frame_flags(i), data, len);
            s = shmline_writer_write(writer, frame, len, frame_flags(i), PATIENCE_NS);
        }
        if (s != SHMLINE_OK) {
            shmline_writer_close(writer);
            return fail(a->zero_copy ? "commit" : "write", s);
        }
    }
    shmline_writer_close(writer);
    printf("wrote %" PRIu64 " frames digest %016" PRIx64 "\n", a->count, digest);
    return 0;
}

/* Checks frame `i` against the formulas; prints what is wrong and returns 0 if it is not. */
static int check_frame(enum kind kind, uint64_t i, const shmline_frame_info *info,
                       const unsigned char *data) {
    unsigned char expected[FRAME_MAX];
    size_t len = fill_frame(kind, i, expected);
    if (info->seq != i || info->len != len || info->flags != frame_flags(i) ||
        info->missed != 0 || memcmp(data, expected, len) != 0) {
        fprintf(stderr,
                "c peer: frame %" PRIu64 " is wrong: seq %" PRIu64 ", len %" PRIu32
                " (expected %zu), flags %" PRIu32 " (expected %" PRIu32 "), missed %" PRIu64
                ", bytes %s\n",
                i, info->seq, info->len, len, info->flags, frame_flags(i), info->missed,
                info->len == len && memcmp(data, expected, len) == 0 ? "right" : "wrong");
        return 0;
    }
    return 1;
}

static int read_frames(const struct args *a) {
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_open(a->stream, &stream);
    if (s != SHMLINE_OK) {
        return fail("open the stream", s);
    }
    uint64_t shape[1] = {F32_ELEMENTS};
    shmline_reader_options opts = shmline_reader_options_default();
    if (a->kind == F32) {
        opts.require_dtype = "<f4";
        opts.require_ndim = 1;
        opts.require_shape = shape;
    }
    shmline_reader *reader = NULL;
    s = shmline_reader_open(stream, &opts, &reader);
    shmline_stream_close(stream); /* the reader keeps it mapped */
    if (s != SHMLINE_OK) {
        return fail("open the reader", s);
    }
    unsigned char buffer[FRAME_MAX];
    uint64_t digest = DIGEST_START;
    uint64_t i = 0;
    int ok = 1;
    for (; ok; i++) {
        shmline_frame_info info;
        const unsigned char *data = buffer;
        if (a->zero_copy) {
            const void *frame = NULL;
            s = shmline_reader_acquire(reader, PATIENCE_NS, &frame, &info);
            data = frame;
        } else {
            s = shmline_reader_read(reader, buffer, sizeof buffer, PATIENCE_NS, &info);
        }
        if (s == SHMLINE_END_OF_STREAM) {
            break;
        }
        if (s != SHMLINE_OK) {
            shmline_reader_close(reader);
            return fail(a->zero_copy ? "acquire" : "read", s);
        }
        ok = check_frame(a->kind, i, &info, data);
        digest = digest_frame(digest, info.seq, info.flags, data, info.len);
        if (a->zero_copy && (s = shmline_reader_release(reader)) != SHMLINE_OK) {
            shmline_reader_close(reader);
            return fail("release", s);
        }
    }
    shmline_reader_close(reader);
    if (!ok) {
        return 1;
    }
    if (i != a->count) {
        fprintf(stderr, "c peer: read %" PRIu64 " frames, expected %" PRIu64 "\n", i, a->count);
        return 1;
    }
    printf("read %" PRIu64 " frames digest %016" PRIx64 "\n", i, digest);
    return 0;
}

static int wait_event(const struct args *a) {
    shmline_event_options opts = shmline_event_options_default();
    opts.mode = a->counting ? SHMLINE_EVENT_COUNTING : SHMLINE_EVENT_FLAG;
    opts.unlink_on_close = 1;
    shmline_event *event = NULL;
    int32_t s = shmline_event_create(a->event, &opts, &event);
    if (s != SHMLINE_OK) {
        return fail("create the event", s);
    }
    printf("ready\n");
    fflush(stdout);
    uint64_t waits = a->counting ? a->count : 1;
    for (uint64_t k = 0; k < waits; k++) {
        s = shmline_event_wait(event, PATIENCE_NS);
        if (s != SHMLINE_OK) {
            shmline_event_close(event);
            return fail("wait", s);
        }
    }
    bool set = false;
    s = shmline_event_is_set(event, &set);
    shmline_event_close(event);
    if (s != SHMLINE_OK) {
        return fail("is_set", s);
    }
    if (set != !a->counting) {
        fprintf(stderr, "c peer: after waiting the event is %s\n", set ? "still set" : "clear");
        return 1;
    }
    printf("waited\n");
    return 0;
}

static int set_event(const struct args *a) {
    shmline_event *event = NULL;
    int32_t s = shmline_event_open(a->event, &event);
    if (s != SHMLINE_OK) {
        return fail("open the event", s);
    }
    uint32_t mode = 0;
    s = shmline_event_mode(event, &mode);
    if (s != SHMLINE_OK) {
        shmline_event_close(event);
        return fail("mode", s);
    }
    if (mode != (a->counting ? SHMLINE_EVENT_COUNTING : SHMLINE_EVENT_FLAG)) {
        shmline_event_close(event);
        fprintf(stderr, "c peer: the event's mode is %" PRIu32 "\n", mode);
        return 1;
    }
    for (uint64_t k = 0; k < a->count; k++) {
        s = shmline_event_set(event);
        if (s != SHMLINE_OK) {
            shmline_event_close(event);
            return fail("set", s);
        }
    }
    shmline_event_close(event);
    printf("set %" PRIu64 "\n", a->count);
    return 0;
}

int main(int argc, char **argv) {
    struct args a;
    if (parse(argc, argv, &a) != 0) {
        return 2;
    }
    crc32_init();
    if (strcmp(a.command, "write") == 0) {
        return write_frames(&a);
    }
    if (strcmp(a.command, "read") == 0) {
        return read_frames(&a);
    }
    return strcmp(a.command, "wait-event") == 0 ? wait_event(&a) : set_event(&a);
}
