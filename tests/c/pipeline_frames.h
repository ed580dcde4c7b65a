/* The frames of the test pipelines: 64-byte frames whose bytes are a function of their sequence
 * number, so that any stage in any language can check every byte. tests/common/mod.rs has the
 * same functions in Rust (`payload`, `scale`), so C and Rust tasks can be chained in any order.
 * Task parameters, as the Rust roles have them: the source writes `out`, the scale stage reads
 * `input` and writes `out`, the sink reads `input`. */
#ifndef SHMLINE_TEST_PIPELINE_FRAMES_H
#define SHMLINE_TEST_PIPELINE_FRAMES_H

#include "shmline.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Bytes per frame. */
#define PIPELINE_FRAME 64

/* Frame `seq` as the source writes it: seq little-endian, then (seq * 31 + i) for byte 8 + i. */
static inline void pipeline_payload(uint64_t seq, unsigned char *frame) {
    for (int i = 0; i < 8; i++) {
        frame[i] = (unsigned char)(seq >> (8 * i));
    }
    for (int i = 0; i < PIPELINE_FRAME - 8; i++) {
        frame[8 + i] = (unsigned char)((unsigned char)seq * 31u + (unsigned)i);
    }
}

/* What the scale stage makes of a frame: every byte doubled (wrapping). */
static inline void pipeline_scale(const unsigned char *in, unsigned char *out, size_t len) {
    for (size_t i = 0; i < len; i++) {
        out[i] = (unsigned char)(in[i] * 2u);
    }
}

/* The unsigned number in environment variable `key`, or `fallback` when it is not set. */
static inline uint64_t pipeline_env(const char *key, uint64_t fallback) {
    const char *value = getenv(key);
    return value == NULL ? fallback : strtoull(value, NULL, 10);
}

/* Prints what failed with the library's message; returns the exit status of a failed task. */
static inline int pipeline_fail(const char *task, const char *what, int32_t status) {
    fprintf(stderr, "%s: %s: %s: %s\n", task, what, shmline_status_str(status),
            shmline_last_error_message());
    return 1;
}

/* How long a test task waits for anything before giving up: 60 s. */
#define PIPELINE_PATIENCE_NS (60LL * 1000 * 1000 * 1000)

#endif
