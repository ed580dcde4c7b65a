/* PYTHUSA's market-data replay, ported: replays FRAMES batches of TICKS ticks (environment;
 * defaults 4000 and 512) for each of the symbols bound to the parameters `sym0`, `sym1`, ...
 * (SYMBOLS of them, default 8), round-robin, as fast as the consumers take them.
 *
 * A frame is one batch of ticks, an int64 array of shape [TICKS, 4]: per tick the exchange time
 * (ns since the session start), the price in 1/10000 units, the size and the side (1 buy, -1
 * sell). Prices follow a seeded random walk per symbol. The library stamps each frame with its
 * commit time (CLOCK_MONOTONIC), from which the consumers track per-frame latency. */
#include <shmline.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SYMBOLS 64

static void die(const char *call, int32_t status) {
    fprintf(stderr, "replayer: %s: %s: %s\n", call, shmline_status_str(status),
            shmline_last_error_message());
    exit(1);
}

static uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = getenv(name);
    return v ? strtoull(v, NULL, 10) : fallback;
}

/* xorshift64: cheap, seeded, the same on every run. */
static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(void) {
    uint64_t frames = env_u64("FRAMES", 4000), ticks = env_u64("TICKS", 512);
    uint64_t symbols = env_u64("SYMBOLS", 8);
    if (symbols == 0 || symbols > MAX_SYMBOLS) {
        fprintf(stderr, "replayer: SYMBOLS must be 1 .. %d\n", MAX_SYMBOLS);
        return 2;
    }
    shmline_task *task = NULL;
    int32_t s = shmline_task_join(NULL, NULL, &task);
    if (s != SHMLINE_OK) die("shmline_task_join", s);
    shmline_writer *out[MAX_SYMBOLS] = {0};
    for (uint64_t k = 0; k < symbols; k++) {
        char param[16];
        snprintf(param, sizeof param, "sym%llu", (unsigned long long)k);
        s = shmline_task_writer(task, param, NULL, &out[k]);
        if (s != SHMLINE_OK) die("shmline_task_writer", s);
    }
    shmline_task_close(task);

    int64_t price[MAX_SYMBOLS], clock_ns = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (uint64_t k = 0; k < symbols; k++) price[k] = 1000000 + 250000 * (int64_t)k;
    for (uint64_t f = 0; f < frames; f++) {
        for (uint64_t k = 0; k < symbols; k++) {
            void *slot = NULL;
            size_t room = 0;
            /* Zero copy and lossless: waits while this symbol's consumer is a ring behind. */
            s = shmline_writer_reserve(out[k], SHMLINE_TIMEOUT_INFINITE, &slot, &room);
            if (s != SHMLINE_OK) die("shmline_writer_reserve", s);
            int64_t *tick = slot;
            for (uint64_t t = 0; t < ticks; t++, tick += 4) {
                uint64_t r = next_random(&rng);
                clock_ns += 1000 + (int64_t)(r % 4000);
                price[k] += (int64_t)((r >> 16) % 21) - 10;
                tick[0] = clock_ns;
                tick[1] = price[k];
                tick[2] = 1 + (int64_t)((r >> 32) % 500);
                tick[3] = (r >> 63) ? 1 : -1;
            }
            s = shmline_writer_commit(out[k], ticks * 4 * sizeof(int64_t), 0);
            if (s != SHMLINE_OK) die("shmline_writer_commit", s);
        }
    }
    for (uint64_t k = 0; k < symbols; k++) shmline_writer_close(out[k]); /* ends the streams */
    return 0;
}
