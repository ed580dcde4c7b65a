/* A round trip through the installed C API across fork(), built by CMakeLists.txt twice: against
 * shmline::shmline and against shmline::static.
 *
 * The parent creates a stream and a reader; the child opens the stream by name and writes
 * FRAMES frames (tests/c/frames.h: every byte, length and flag derives from the frame number),
 * switching between copy, zero-copy and batch writes every chunk, then closes the writer. The
 * parent reads them the same three ways and checks every frame, then end of stream and the
 * child's exit status. Exit status 0 on success. */
#define _POSIX_C_SOURCE 200809L

#include <shmline.h>

#include "frames.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Several laps of a small ring, so that the writer keeps waiting for the reader. */
#define FRAMES 3000
#define CAPACITY 8

static int fail(const char *who, const char *what, int32_t status) {
    fprintf(stderr, "roundtrip %s: %s: %s: %s\n", who, what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

/* The child: writes every frame to the stream `name`. Returns the exit status. */
static int write_frames(const char *name) {
    shmline_stream *stream = NULL;
    shmline_writer *writer = NULL;
    int32_t s = shmline_stream_open(name, &stream);
    if (s != SHMLINE_OK) {
        return fail("writer", "open stream", s);
    }
    s = shmline_writer_open(stream, NULL, &writer);
    shmline_stream_close(stream);
    if (s != SHMLINE_OK) {
        return fail("writer", "open writer", s);
    }
    static unsigned char batch[FRAMES_BATCH * FRAMES_MAX];
    uint64_t i = 0;
    while (s == SHMLINE_OK && i < FRAMES) {
        switch ((i / FRAMES_CHUNK) % 3) {
        case 0: {
            unsigned char frame[FRAMES_MAX];
            frame_fill(i, frame);
            s = shmline_writer_write(writer, frame, frame_len(i), frame_flags(i), FRAMES_PATIENCE_NS);
            i += s == SHMLINE_OK;
            break;
        }
        case 1: {
            void *slot = NULL;
            size_t capacity = 0;
            s = shmline_writer_reserve(writer, FRAMES_PATIENCE_NS, &slot, &capacity);
            if (s == SHMLINE_OK) {
                frame_fill(i, slot);
                s = shmline_writer_commit(writer, frame_len(i), frame_flags(i));
                i++;
            }
            break;
        }
        default: {
            /* A batch never crosses a chunk, so all its frames share one flags value. */
            size_t lens[FRAMES_BATCH];
            size_t n = 0;
            size_t offset = 0;
            while (n < FRAMES_BATCH && i + n < FRAMES && (i + n) / FRAMES_CHUNK == i / FRAMES_CHUNK) {
                lens[n] = frame_len(i + n);
                frame_fill(i + n, batch + offset);
                offset += lens[n];
                n++;
            }
            size_t written = 0;
            s = shmline_writer_write_batch(writer, batch, lens, n, frame_flags(i), FRAMES_PATIENCE_NS,
                                           &written);
            i += written;
            break;
        }
        }
    }
    if (s != SHMLINE_OK) {
        shmline_writer_close(writer);
        return fail("writer", "write", s);
    }
    shmline_writer_close(writer); /* end of stream */
    return 0;
}

/* The parent: reads and checks every frame, then end of stream. Returns 0 on success. */
static int read_frames(shmline_reader *reader) {
    static unsigned char buf[FRAMES_BATCH * FRAMES_MAX];
    shmline_frame_info infos[FRAMES_BATCH];
    uint64_t i = 0;
    int32_t s = SHMLINE_OK;
    while (s == SHMLINE_OK && i < FRAMES) {
        switch ((i / FRAMES_CHUNK) % 3) {
        case 0:
            s = shmline_reader_read(reader, buf, FRAMES_MAX, FRAMES_PATIENCE_NS, &infos[0]);
            if (s == SHMLINE_OK && (infos[0].seq != i || !frame_ok(i, buf, infos[0].len, infos[0].flags))) {
                fprintf(stderr, "roundtrip reader: frame %llu is wrong\n", (unsigned long long)i);
                return 1;
            }
            i += s == SHMLINE_OK;
            break;
        case 1: {
            const void *data = NULL;
            s = shmline_reader_acquire(reader, FRAMES_PATIENCE_NS, &data, &infos[0]);
            if (s == SHMLINE_OK) {
                int ok = infos[0].seq == i && frame_ok(i, data, infos[0].len, infos[0].flags);
                s = shmline_reader_release(reader);
                if (!ok) {
                    fprintf(stderr, "roundtrip reader: acquired frame %llu is wrong\n", (unsigned long long)i);
                    return 1;
                }
                i++;
            }
            break;
        }
        default: {
            size_t count = 0;
            s = shmline_reader_read_batch(reader, buf, sizeof buf, infos, FRAMES_BATCH, FRAMES_PATIENCE_NS,
                                          &count);
            size_t offset = 0;
            for (size_t k = 0; s == SHMLINE_OK && k < count; k++, i++) {
                if (infos[k].seq != i || !frame_ok(i, buf + offset, infos[k].len, infos[k].flags)) {
                    fprintf(stderr, "roundtrip reader: batch frame %llu is wrong\n", (unsigned long long)i);
                    return 1;
                }
                offset += infos[k].len;
            }
            break;
        }
        }
    }
    if (s != SHMLINE_OK) {
        return fail("reader", "read", s);
    }
    s = shmline_reader_read(reader, buf, FRAMES_MAX, FRAMES_PATIENCE_NS, &infos[0]);
    if (s != SHMLINE_END_OF_STREAM) {
        return fail("reader", "expected the end of the stream", s);
    }
    return 0;
}

int main(void) {
    char name[64];
    snprintf(name, sizeof name, "t-cmake-c-%ld", (long)getpid());

    shmline_stream_options opts = shmline_stream_options_default();
    opts.capacity = CAPACITY;
    opts.max_frame_size = FRAMES_MAX;
    opts.unlink_on_close = 1; /* the name goes when the parent's handles are closed */
    shmline_stream *stream = NULL;
    shmline_reader *reader = NULL;
    int32_t s = shmline_stream_create(name, &opts, &stream);
    if (s != SHMLINE_OK) {
        return fail("parent", "create stream", s);
    }
    /* Opened before the child exists, so that it misses no frame. */
    s = shmline_reader_open(stream, NULL, &reader);
    if (s != SHMLINE_OK) {
        shmline_stream_close(stream);
        return fail("parent", "open reader", s);
    }

    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        /* The child leaves the parent's inherited handles alone and skips atexit handlers. */
        _exit(write_frames(name));
    }
    int result = child < 0 ? (perror("fork"), 1) : read_frames(reader);
    shmline_reader_close(reader);
    shmline_stream_close(stream);

    int wstatus = 0;
    if (child > 0 && (waitpid(child, &wstatus, 0) != child || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)) {
        fprintf(stderr, "roundtrip: the writer process failed (wait status %d)\n", wstatus);
        result = 1;
    }
    if (result == 0) {
        printf("roundtrip: %d frames from a child process, every byte checked\n", FRAMES);
    }
    return result;
}
