// The C++ peer of the conformance matrix (tests/conformance/README.md has the command line, the
// frames and the digest, which every language's peer shares). Streams and events through the
// header-only binding <shmline/shmline.hpp>.
#include <shmline/shmline.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>

namespace {

constexpr std::chrono::seconds patience{60};
constexpr std::uint32_t capacity = 16;
constexpr std::size_t f32_elements = 256;
constexpr std::size_t f32_frame = f32_elements * 4;
constexpr std::size_t bytes_max = 1000;
constexpr std::size_t frame_max = f32_frame;  // the larger of the two kinds
constexpr std::uint64_t digest_start = 0xcbf29ce484222325u;

// ---- The frames, the digest and the command line: the same in every peer. ----

enum class Kind { f32, bytes };

std::uint32_t frame_flags(std::uint64_t i) {
    return static_cast<std::uint32_t>(i * 2654435761u);
}

// Writes frame `i` of `kind` into `out` (room for frame_max bytes) and returns its length.
std::size_t fill_frame(Kind kind, std::uint64_t i, std::byte* out) {
    if (kind == Kind::f32) {
        for (std::uint64_t k = 0; k < f32_elements; k++) {
            const auto n = static_cast<std::int64_t>((i * 256 + k) % (1u << 24)) - (1 << 23);
            const float value = static_cast<float>(n) / 256.0f;
            std::memcpy(out + 4 * k, &value, 4);  // little-endian hosts only, as documented
        }
        return f32_frame;
    }
    const auto len = static_cast<std::size_t>((i * 7919) % (bytes_max + 1));
    for (std::size_t j = 0; j < len; j++) {
        out[j] = static_cast<std::byte>(i * 131 + j * 7 + (j >> 8) * 13);
    }
    return len;
}

std::array<std::uint32_t, 256> crc32_table() {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t n = 0; n < 256; n++) {
        std::uint32_t c = n;
        for (int b = 0; b < 8; b++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        table[n] = c;
    }
    return table;
}

std::uint32_t crc32(const std::byte* data, std::size_t len) {
    static const std::array<std::uint32_t, 256> table = crc32_table();
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t j = 0; j < len; j++) {
        c = table[(c ^ std::to_integer<std::uint32_t>(data[j])) & 0xFF] ^ (c >> 8);
    }
    return c ^ 0xFFFFFFFFu;
}

std::uint64_t digest_frame(std::uint64_t h, std::uint64_t seq, std::uint32_t flags,
                           const std::byte* data, std::size_t len) {
    for (const std::uint64_t word : {seq, std::uint64_t{flags}, std::uint64_t{len},
                                     std::uint64_t{crc32(data, len)}}) {
        h = (h ^ word) * 0x100000001b3u;
    }
    return h;
}

// A bad command line: main prints the usage and exits with status 2.
struct Usage : std::runtime_error {
    Usage() : std::runtime_error("usage") {}
};

// A check that failed: main prints the message and exits with status 1.
struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string command;
    std::string name;  // --stream or --event
    Kind kind = Kind::f32;
    bool zero_copy = false;
    bool counting = false;
    std::uint64_t count = 0;  // --frames or --count
};

Args parse(int argc, char** argv) {
    if (argc < 2 || argc % 2 != 0) {
        throw Usage();
    }
    Args a;
    a.command = argv[1];
    const bool streams = a.command == "write" || a.command == "read";
    const bool events = a.command == "set-event" || a.command == "wait-event";
    std::map<std::string, std::string> options;
    for (int k = 2; k < argc; k += 2) {
        options[argv[k]] = argv[k + 1];
    }
    const auto take = [&](const std::string& key, std::initializer_list<const char*> allowed) {
        const auto found = options.find(key);
        if (found == options.end()) {
            throw Usage();
        }
        std::string value = found->second;
        options.erase(found);
        if (allowed.size() != 0 &&
            std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
            throw Usage();
        }
        return value;
    };
    if (streams) {
        a.name = take("--stream", {});
        a.kind = take("--kind", {"f32", "bytes"}) == "f32" ? Kind::f32 : Kind::bytes;
        a.zero_copy = take("--path", {"copy", "zero"}) == "zero";
    } else if (events) {
        a.name = take("--event", {});
        a.counting = take("--mode", {"flag", "counting"}) == "counting";
    } else {
        throw Usage();
    }
    const std::string count = take(streams ? "--frames" : "--count", {});
    std::size_t used = 0;
    try {
        a.count = std::stoull(count, &used);
    } catch (const std::logic_error&) {
        throw Usage();
    }
    if (used != count.size() || !options.empty()) {
        throw Usage();
    }
    return a;
}

// ---- The roles. ----

void write_frames(const Args& a) {
    shmline::StreamOptions options;
    options.capacity = capacity;
    options.unlink_on_close = true;
    if (a.kind == Kind::f32) {
        options.schema = shmline::Schema{"<f4", {f32_elements}};
    } else {
        options.max_frame_size = bytes_max;
        options.checksum = true;
    }
    shmline::Writer writer = shmline::Stream::create(a.name, options).writer();
    std::printf("ready\n");
    std::fflush(stdout);
    if (!writer.wait_for_readers(1, patience)) {
        throw Failure("no reader attached");
    }
    std::array<std::byte, frame_max> frame{};
    std::uint64_t digest = digest_start;
    for (std::uint64_t i = 0; i < a.count; i++) {
        if (a.zero_copy) {
            shmline::WriteSlot slot = writer.reserve(patience);
            if (!slot) {
                throw Failure("reserve: " + std::string(shmline::status_name(slot.status())));
            }
            const std::size_t len = fill_frame(a.kind, i, slot.data());
            digest = digest_frame(digest, i, frame_flags(i), slot.data(), len);
            slot.commit(len, frame_flags(i));
        } else {
            const std::size_t len = fill_frame(a.kind, i, frame.data());
            digest = digest_frame(digest, i, frame_flags(i), frame.data(), len);
            const shmline::Status status =
                writer.write(frame.data(), len, frame_flags(i), patience);
            if (status != shmline::Status::Ok) {
                throw Failure("write: " + std::string(shmline::status_name(status)));
            }
        }
    }
    writer.close();
    std::printf("wrote %" PRIu64 " frames digest %016" PRIx64 "\n", a.count, digest);
}

// Checks frame `i` against the formulas; throws Failure saying what is wrong.
void check_frame(Kind kind, std::uint64_t i, const shmline::FrameInfo& info,
                 const std::byte* data) {
    std::array<std::byte, frame_max> expected{};
    const std::size_t len = fill_frame(kind, i, expected.data());
    const bool bytes_right = info.len == len && std::memcmp(data, expected.data(), len) == 0;
    if (info.seq != i || info.flags != frame_flags(i) || info.missed != 0 || !bytes_right) {
        throw Failure("frame " + std::to_string(i) + " is wrong: seq " + std::to_string(info.seq) +
                      ", len " + std::to_string(info.len) + " (expected " + std::to_string(len) +
                      "), flags " + std::to_string(info.flags) + " (expected " +
                      std::to_string(frame_flags(i)) + "), missed " +
                      std::to_string(info.missed) + ", bytes " +
                      (bytes_right ? "right" : "wrong"));
    }
}

void read_frames(const Args& a) {
    shmline::ReaderOptions options;
    if (a.kind == Kind::f32) {
        options.require_schema = shmline::Schema{"<f4", {f32_elements}};
    }
    shmline::Reader reader = shmline::Stream::open(a.name).reader(options);
    std::array<std::byte, frame_max> buffer{};
    std::uint64_t digest = digest_start;
    std::uint64_t i = 0;
    for (;; i++) {
        shmline::Status status;
        if (a.zero_copy) {
            const shmline::ReadSlot slot = reader.acquire(patience);
            status = slot.status();
            if (slot) {
                check_frame(a.kind, i, slot.info(), slot.data());
                digest = digest_frame(digest, i, slot.info().flags, slot.data(), slot.size());
            }
        } else {
            shmline::FrameInfo info{};
            status = reader.read(buffer, info, patience);
            if (status == shmline::Status::Ok) {
                check_frame(a.kind, i, info, buffer.data());
                digest = digest_frame(digest, i, info.flags, buffer.data(), info.len);
            }
        }
        if (status == shmline::Status::EndOfStream) {
            break;
        }
        if (status != shmline::Status::Ok) {
            throw Failure(std::string(a.zero_copy ? "acquire: " : "read: ") +
                          shmline::status_name(status));
        }
    }
    if (i != a.count) {
        throw Failure("read " + std::to_string(i) + " frames, expected " +
                      std::to_string(a.count));
    }
    std::printf("read %" PRIu64 " frames digest %016" PRIx64 "\n", i, digest);
}

void wait_event(const Args& a) {
    shmline::EventOptions options;
    options.mode = a.counting ? shmline::EventMode::Counting : shmline::EventMode::Flag;
    options.unlink_on_close = true;
    const shmline::Event event = shmline::Event::create(a.name, options);
    std::printf("ready\n");
    std::fflush(stdout);
    const std::uint64_t waits = a.counting ? a.count : 1;
    for (std::uint64_t k = 0; k < waits; k++) {
        if (!event.wait(patience)) {
            throw Failure("wait " + std::to_string(k) + " timed out");
        }
    }
    if (event.is_set() == a.counting) {
        throw Failure(std::string("after waiting the event is ") +
                      (a.counting ? "still set" : "clear"));
    }
    std::printf("waited\n");
}

void set_event(const Args& a) {
    const shmline::Event event = shmline::Event::open(a.name);
    const auto mode = a.counting ? shmline::EventMode::Counting : shmline::EventMode::Flag;
    if (event.mode() != mode) {
        throw Failure("the event's mode is " + std::to_string(static_cast<int>(event.mode())));
    }
    for (std::uint64_t k = 0; k < a.count; k++) {
        event.set();
    }
    std::printf("set %" PRIu64 "\n", a.count);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args a = parse(argc, argv);
        if (a.command == "write") {
            write_frames(a);
        } else if (a.command == "read") {
            read_frames(a);
        } else if (a.command == "wait-event") {
            wait_event(a);
        } else {
            set_event(a);
        }
        return 0;
    } catch (const Usage&) {
        std::fprintf(stderr,
                     "usage: peer write|read --stream NAME --kind f32|bytes --path copy|zero "
                     "--frames N\n"
                     "       peer set-event|wait-event --event NAME --mode flag|counting "
                     "--count K\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "c++ peer: %s\n", e.what());
        return 1;
    }
}
