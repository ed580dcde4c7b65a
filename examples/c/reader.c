/* shmline quick start in C, the reader: opens the stream the writer creates and prints every
 * frame until the writer closes it.
 *
 *   cc reader.c $(pkg-config --cflags --libs shmline) -o reader    (or CMake: shmline::shmline)
 *   ./reader & ./writer
 *
 * Usage: reader [STREAM_NAME]   (default "quickstart", as in writer.c) */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <shmline.h>

#include <stdio.h>
#include <time.h>

/* Prints what failed and the library's explanation; returns main's exit status. */
static int fail(const char *what, int32_t status) {
    fprintf(stderr, "reader: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "quickstart";

    /* The writer creates the stream, perhaps after we start: retry for up to 30 s. */
    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_open(name, &stream);
    for (int tries = 0; s == SHMLINE_NOT_FOUND && tries < 3000; tries++) {
        const struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        s = shmline_stream_open(name, &stream);
    }
    if (s != SHMLINE_OK) {
        return fail("open the stream", s);
    }
    shmline_reader *reader = NULL;
    s = shmline_reader_open(stream, NULL, &reader);
    shmline_stream_close(stream); /* the reader keeps the stream mapped on its own */
    if (s != SHMLINE_OK) {
        return fail("open a reader", s);
    }

    char frame[256]; /* the writer's max_frame_size: always enough */
    shmline_frame_info info;
    /* Blocks until the next frame; returns SHMLINE_END_OF_STREAM once the writer has closed and
     * every frame was read (SHMLINE_WRITER_DEAD if it crashed instead). */
    while ((s = shmline_reader_read(reader, frame, sizeof frame, SHMLINE_TIMEOUT_INFINITE, &info)) ==
           SHMLINE_OK) {
        printf("frame %llu: %.*s\n", (unsigned long long)info.seq, (int)info.len, frame);
    }
    shmline_reader_close(reader);
    return s == SHMLINE_END_OF_STREAM ? 0 : fail("read", s);
}
