/* The frames of the cross-process tests: frame i is a deterministic function of i, so a reader in
 * any language can verify every byte, its length, flags and sequence number without being told
 * what was written. tests/c_abi.rs has the same functions in Rust. */
#ifndef SHMLINE_TEST_FRAMES_H
#define SHMLINE_TEST_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/* Largest frame of the cross-process streams. */
#define FRAMES_MAX 256
/* Frames per chunk: the writer and reader switch API (copy, zero-copy, batch) every chunk. */
#define FRAMES_CHUNK 100
/* Longest batch the writer or reader moves in one call. */
#define FRAMES_BATCH 7
/* How long any one wait for the other process may take before the test fails: 60 s. */
#define FRAMES_PATIENCE_NS (60LL * 1000 * 1000 * 1000)

/* Length of frame i: 8 to FRAMES_MAX bytes. */
static inline size_t frame_len(uint64_t i) {
    return 8 + (size_t)((i * 7919u) % (FRAMES_MAX - 7));
}

/* Application flags of frame i: its chunk number (a batch never crosses a chunk). */
static inline uint32_t frame_flags(uint64_t i) {
    return (uint32_t)(i / FRAMES_CHUNK);
}

/* Byte j of frame i: the sequence number little-endian, then a pattern. */
static inline unsigned char frame_byte(uint64_t i, size_t j) {
    return j < 8 ? (unsigned char)(i >> (8 * j)) : (unsigned char)(i * 31u + j * 7u);
}

static inline void frame_fill(uint64_t i, unsigned char *buf) {
    size_t len = frame_len(i);
    for (size_t j = 0; j < len; j++) {
        buf[j] = frame_byte(i, j);
    }
}

/* Whether `data`/`len`/`flags` is exactly frame i. */
static inline int frame_ok(uint64_t i, const unsigned char *data, size_t len, uint32_t flags) {
    if (len != frame_len(i) || flags != frame_flags(i)) {
        return 0;
    }
    for (size_t j = 0; j < len; j++) {
        if (data[j] != frame_byte(i, j)) {
            return 0;
        }
    }
    return 1;
}

#endif
