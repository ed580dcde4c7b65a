// The flagship's signal generator (C++17): writes FLAGSHIP_FRAMES frames (default 20000) of
// 4096 float32 samples to its `signal` parameter, then ends the stream by closing its writer.
//
// Frame k is a sum of sines plus noise whose loudest tone sits exactly on FFT bin
// `dominant_bin(k)` (see below), so the sink can check that every spectrum it receives came
// from the right frame. The library stamps each frame with its commit time (CLOCK_MONOTONIC),
// which the FFT stage carries forward for the sink's end-to-end latency.
//
// The program joins the pipeline with shmline::Task (<shmline/shmline.hpp>, the C++ binding)
// and takes its writer by the parameter name the manifest binds.
#include <shmline/shmline.hpp>

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

    try {
        // Names from SHMLINE_PIPELINE and SHMLINE_TASK, set by the runner; returns once every
        // task has joined, so no reader misses a frame.
        shmline::Writer out = shmline::Task::join().writer("signal");
        // (The Task is gone: every handle it had is taken.)
        for (std::uint64_t k = 0; k < frames; k++) {
            // Zero copy: fill the next slot in shared memory. Waits while the slowest reader is
            // a whole ring behind, so nothing is ever dropped.
            shmline::WriteSlot slot = out.reserve();
            if (!slot) {
                std::fprintf(stderr, "generator: no slot: %s\n",
                             shmline::status_name(slot.status()));
                return 1;
            }
            std::memcpy(slot.data(), &patterns[(k % kPatterns) * kSamples],
                        kSamples * sizeof(float));
            // Leaving the scope commits the whole slot (one frame of the stream's schema): the
            // library stamps it (CLOCK_MONOTONIC) and publishes it.
        }
        return 0;  // out's destructor ends the stream: the pipeline drains and ends by itself
    } catch (const shmline::Error& e) {
        std::fprintf(stderr, "generator: %s\n", e.what());
        return 1;
    }
}
