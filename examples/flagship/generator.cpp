// The flagship's signal generator (C++17): writes FLAGSHIP_FRAMES frames (default 20000) of
// 4096 float32 samples to its `signal` parameter, then ends the stream by closing its writer.
//
// Frame k is a sum of sines plus noise whose loudest tone sits exactly on FFT bin
// `dominant_bin(k)` (see below), so the sink can check that every spectrum it receives came
// from the right frame. The library stamps each frame with its commit time (CLOCK_MONOTONIC),
// which the FFT stage carries forward for the sink's end-to-end latency.
//
// The C++ binding's classes do not adopt the raw handles a pipeline task hands out, so this
// program joins through the C API (include/shmline.h), with a small RAII guard of its own.
#include <shmline.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr std::size_t kSamples = 4096;
// Distinct frames precomputed and cycled through: computing 4096 sines per frame would make
// the generator, not the transport, the bottleneck of the demo.
constexpr std::uint64_t kPatterns = 16;

// The FFT bin of frame k's loudest tone; the sink checks it (keep the two in step).
std::size_t dominant_bin(std::uint64_t k) { return 64 + 97 * (k % kPatterns); }

[[noreturn]] void die(const char* call, std::int32_t status) {
    std::fprintf(stderr, "generator: %s: %s: %s\n", call, shmline_status_str(status),
                 shmline_last_error_message());
    std::exit(1);
}

struct WriterGuard {
    shmline_writer* handle = nullptr;
    ~WriterGuard() { shmline_writer_close(handle); }  // closing ends the stream
};

}  // namespace

int main() {
    const char* frames_env = std::getenv("FLAGSHIP_FRAMES");
    const std::uint64_t frames = frames_env ? std::strtoull(frames_env, nullptr, 10) : 20000;

    // Sums of three sines (the dominant one on an exact bin) plus Gaussian noise.
    const double two_pi = 6.283185307179586;
    std::mt19937 rng(42);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    std::vector<float> patterns(kPatterns * kSamples);
    for (std::uint64_t p = 0; p < kPatterns; p++) {
        const double f0 = static_cast<double>(dominant_bin(p));
        for (std::size_t i = 0; i < kSamples; i++) {
            const double t = static_cast<double>(i) / kSamples;
            const double v = 4.0 * std::sin(two_pi * f0 * t) +
                             1.5 * std::sin(two_pi * (f0 * 0.5 + 3.0) * t + 0.7) +
                             0.8 * std::sin(two_pi * 1500.25 * t);
            patterns[p * kSamples + i] = static_cast<float>(v) + noise(rng);
        }
    }

    shmline_task* task = nullptr;
    std::int32_t s = shmline_task_join(nullptr, nullptr, &task);  // SHMLINE_PIPELINE, _TASK
    if (s != SHMLINE_OK) die("shmline_task_join", s);
    WriterGuard out;
    s = shmline_task_writer(task, "signal", nullptr, &out.handle);
    if (s != SHMLINE_OK) die("shmline_task_writer", s);
    shmline_task_close(task);  // every handle is taken

    for (std::uint64_t k = 0; k < frames; k++) {
        void* slot = nullptr;
        std::size_t room = 0;
        // Zero copy: fill the next slot in shared memory. Waits while the slowest reader is a
        // whole ring behind, so nothing is ever dropped.
        s = shmline_writer_reserve(out.handle, SHMLINE_TIMEOUT_INFINITE, &slot, &room);
        if (s != SHMLINE_OK) die("shmline_writer_reserve", s);
        std::memcpy(slot, &patterns[(k % kPatterns) * kSamples], kSamples * sizeof(float));
        // The commit stamps the frame (CLOCK_MONOTONIC) and publishes it.
        s = shmline_writer_commit(out.handle, kSamples * sizeof(float), 0);
        if (s != SHMLINE_OK) die("shmline_writer_commit", s);
    }
    return 0;
}
