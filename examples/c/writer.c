/* shmline quick start in C, the writer: creates a stream, waits for a reader, sends ten text
 * frames and closes the stream, which tells the reader that nothing more will come.
 *
 *   cc writer.c $(pkg-config --cflags --libs shmline) -o writer    (or CMake: shmline::shmline)
 *   ./reader & ./writer
 *
 * Usage: writer [STREAM_NAME]   (default "quickstart"; reader.c must use the same name) */
#include <shmline.h>

#include <stdio.h>

/* Prints what failed and the library's explanation; returns main's exit status. */
static int fail(const char *what, int32_t status) {
    fprintf(stderr, "writer: %s: %s: %s\n", what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "quickstart";

    /* Options structs always start from their defaults, then change what is needed. */
    shmline_stream_options opts = shmline_stream_options_default();
    opts.max_frame_size = 256; /* largest frame in bytes (or give a dtype and shape) */
    opts.unlink_on_close = 1;  /* remove the name from /dev/shm once our handles are closed */

    shmline_stream *stream = NULL;
    int32_t s = shmline_stream_create(name, &opts, &stream);
    if (s != SHMLINE_OK) {
        return fail("create the stream", s);
    }
    shmline_writer *writer = NULL;
    s = shmline_writer_open(stream, NULL, &writer);
    /* A reader sees the frames written after it opened: wait (up to 30 s) until one is there. */
    if (s == SHMLINE_OK) {
        s = shmline_writer_wait_for_readers(writer, 1, 30LL * 1000 * 1000 * 1000);
    }
    for (int i = 0; s == SHMLINE_OK && i < 10; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "hello %d", i);
        /* Copies the frame into shared memory; waits while the reader is a whole ring behind. */
        s = shmline_writer_write(writer, text, (size_t)len, 0, SHMLINE_TIMEOUT_INFINITE);
    }
    int result = s == SHMLINE_OK ? 0 : fail("write", s);

    /* Closing the writer ends the stream: the reader gets SHMLINE_END_OF_STREAM after the last
     * frame. Close functions accept NULL, so this is right on every path. */
    shmline_writer_close(writer);
    shmline_stream_close(stream);
    return result;
}
