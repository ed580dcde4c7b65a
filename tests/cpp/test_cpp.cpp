// The C++ binding <shmline/shmline.hpp> as its users see it: every class, its RAII and move
// semantics, errors thrown with their status and message, the non-throwing try_ calls, the scoped
// zero-copy guards, timeouts, events, end of stream, multi-writer streams, reader groups (threads
// and processes sharing frames), frames crossing from a C++ writer process to a C++ reader
// process, and pipelines declared in C++ (Pipeline, Run) whose tasks are C++ programs joining
// with shmline::Task: this test program itself, started by the runner in a task role (see
// run_task_role below).
//
// Built by tests/cmake_consumer twice, as C++17 and as C++20 (where the byte views are std::span),
// with -Wall -Wextra -Werror -pedantic.
#include <shmline/shmline.hpp>

#include <gtest/gtest.h>

extern "C" {
#include "frames.h"  // tests/c/frames.h: the frames of the cross-process tests
#include "pipeline_frames.h"  // tests/c/pipeline_frames.h: the frames of the pipeline tests
}

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

using namespace std::chrono_literals;
using shmline::Status;

namespace shmline {
// Failed assertions print statuses by name.
void PrintTo(Status status, std::ostream* out) {
    *out << status_name(status);
}
}  // namespace shmline

namespace {

// Long enough for a loaded 2-core machine; only ever reached when a test is failing.
constexpr auto patience = 60s;

// The handles own a resource: they move, never copy.
static_assert(!std::is_copy_constructible_v<shmline::Stream>);
static_assert(!std::is_copy_assignable_v<shmline::Writer>);
static_assert(!std::is_copy_constructible_v<shmline::Reader>);
static_assert(!std::is_copy_constructible_v<shmline::Event>);
static_assert(!std::is_copy_constructible_v<shmline::WriteSlot>);
static_assert(!std::is_copy_constructible_v<shmline::ReadSlot>);
static_assert(std::is_nothrow_move_constructible_v<shmline::Stream>);
static_assert(std::is_nothrow_move_assignable_v<shmline::Writer>);
static_assert(std::is_nothrow_move_assignable_v<shmline::Reader>);
static_assert(std::is_nothrow_move_assignable_v<shmline::Event>);
static_assert(std::is_nothrow_move_assignable_v<shmline::WriteSlot>);
static_assert(std::is_nothrow_move_assignable_v<shmline::ReadSlot>);
static_assert(std::is_nothrow_copy_constructible_v<shmline::Error>);
static_assert(!std::is_copy_constructible_v<shmline::Task>);
static_assert(!std::is_copy_constructible_v<shmline::Pipeline>);
static_assert(!std::is_copy_assignable_v<shmline::Run>);
static_assert(std::is_nothrow_move_constructible_v<shmline::Task>);
static_assert(std::is_nothrow_move_assignable_v<shmline::Pipeline>);
static_assert(std::is_nothrow_move_assignable_v<shmline::Run>);
static_assert(std::is_nothrow_copy_constructible_v<shmline::PipelineFailed>);
static_assert(std::is_base_of_v<shmline::Error, shmline::PipelineFailed>);
// Batch reads fill the C structs in place.
static_assert(std::is_same_v<shmline::FrameInfo, shmline_frame_info>);
#if defined(SHMLINE_HAS_STD_SPAN)
static_assert(std::is_same_v<shmline::ConstBytes, std::span<const std::byte>>);
#endif

// A segment name no other test or process uses; the "t-" prefix lets scripts/test spot leaks.
std::string unique_name(const char* what) {
    static std::atomic<int> counter{0};
    return "t-cpp" + std::to_string(__cplusplus / 100 % 100) + "-" + what + "-" +
           std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// A raw-bytes stream whose name goes away with its last handle.
shmline::Stream small_stream(const char* what, std::uint32_t capacity = 8,
                             std::uint32_t max_frame_size = 64) {
    shmline::StreamOptions options;
    options.capacity = capacity;
    options.max_frame_size = max_frame_size;
    options.unlink_on_close = true;
    return shmline::Stream::create(unique_name(what), options);
}

std::vector<std::byte> bytes(const std::string& text) {
    std::vector<std::byte> out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

std::string text(shmline::ConstBytes data) {
    return std::string(reinterpret_cast<const char*>(data.data()), data.size());
}

// The status a throwing call threw, or Ok if it did not throw.
template <class F>
Status thrown(F&& call) {
    try {
        call();
    } catch (const shmline::Error& e) {
        return e.status();
    }
    return Status::Ok;
}

// ---------------------------------------------------------------------------------------------
// Task programs: this test program, started by a pipeline's runner in a task role

// The environment variable that makes this program a task: its value is the role.
constexpr const char* role_variable = "SHMLINE_CPP_TEST_ROLE";

// How a role ends: by returning the process's exit status, as a task program's main() does.
int source_role(shmline::Task& task) {
    shmline::Writer out = task.writer("out");
    task.close();  // every handle is taken
    const std::uint64_t frames = pipeline_env("FRAMES", 1000);
    unsigned char frame[PIPELINE_FRAME];
    for (std::uint64_t seq = 0; seq < frames; seq++) {
        pipeline_payload(seq, frame);
        if (out.write(frame, sizeof frame, 0, patience) != Status::Ok) {
            std::fprintf(stderr, "source: frame %llu timed out\n",
                         static_cast<unsigned long long>(seq));
            return 1;
        }
    }
    return 0;  // out's destructor ends the stream
}

int scale_role(shmline::Task& task) {
    shmline::ReaderOptions blocking;
    blocking.wait = shmline::WaitStrategy::Block;
    shmline::Reader input = task.reader("input", blocking);
    shmline::Writer out = task.writer("out");
    task.close();
    for (;;) {
        shmline::ReadSlot frame = input.acquire(patience);
        if (frame.status() == Status::EndOfStream) {
            return 0;
        }
        if (!frame) {
            std::fprintf(stderr, "scale: acquire: %s\n", shmline::status_name(frame.status()));
            return 1;
        }
        shmline::WriteSlot slot = out.reserve(patience);
        if (!slot || slot.capacity() < frame.size()) {
            std::fprintf(stderr, "scale: no slot for the frame\n");
            return 1;
        }
        pipeline_scale(reinterpret_cast<const unsigned char*>(frame.data()),
                       reinterpret_cast<unsigned char*>(slot.data()), frame.size());
        slot.set_length(frame.size());
        slot.set_flags(frame.info().flags);
    }  // the slot is published, then the frame released
}

int sink_role(shmline::Task& task) {
    shmline::Reader input = task.reader("input");
    const std::uint64_t frames = pipeline_env("FRAMES", 1000);
    const std::uint64_t scaled = pipeline_env("SCALED", 1);
    std::uint64_t count = 0;
    std::array<std::byte, PIPELINE_FRAME> frame{};
    unsigned char expected[PIPELINE_FRAME];
    shmline::FrameInfo info{};
    Status status;
    while ((status = input.read(frame, info, patience)) == Status::Ok) {
        pipeline_payload(count, expected);
        for (std::uint64_t k = 0; k < scaled; k++) {
            pipeline_scale(expected, expected, sizeof expected);
        }
        if (info.seq != count || info.len != sizeof expected ||
            std::memcmp(frame.data(), expected, sizeof expected) != 0) {
            std::fprintf(stderr, "sink: frame %llu is not the expected one\n",
                         static_cast<unsigned long long>(count));
            return 1;
        }
        count++;
    }
    if (status != Status::EndOfStream || count != frames) {
        std::fprintf(stderr, "sink: %s after %llu frames, expected end of stream after %llu\n",
                     shmline::status_name(status), static_cast<unsigned long long>(count),
                     static_cast<unsigned long long>(frames));
        return 1;
    }
    return 0;
}

// Reads one frame of `a`, then one of `b`, ... until one of them ends, then checks that both did.
int merge_role(shmline::Task& task) {
    shmline::Reader a = task.reader("a");
    shmline::Reader b = task.reader("b");
    std::array<std::byte, PIPELINE_FRAME> frame{};
    shmline::FrameInfo info{};
    while (a.read(frame, info, patience) == Status::Ok &&
           b.read(frame, info, patience) == Status::Ok) {
    }
    task.check_inputs({{"a", a}, {"b", b}});  // throws if one still had frames
    return 0;
}

// Tells the test it has joined (event `ready`), then waits to be asked to stop.
int idle_role(shmline::Task& task) {
    // The runner sends SIGTERM right after setting the stop event: this task ends by itself.
    std::signal(SIGTERM, SIG_IGN);
    task.event("ready").set();
    if (!task.wait_stop(patience) || !task.stop_requested()) {
        std::fprintf(stderr, "idle: no stop was requested\n");
        return 1;
    }
    return 0;
}

// Runs the role `role` as the task the runner started this process as.
int run_task_role(const std::string& role) {
    try {
        shmline::Task task = shmline::Task::join();
        if (role == "source") {
            return source_role(task);
        }
        if (role == "scale") {
            return scale_role(task);
        }
        if (role == "sink") {
            return sink_role(task);
        }
        if (role == "merge") {
            return merge_role(task);
        }
        if (role == "idle") {
            return idle_role(task);
        }
        if (role == "fail") {
            return 3;
        }
        std::fprintf(stderr, "no task role %s\n", role.c_str());
    } catch (const shmline::Error& e) {
        std::fprintf(stderr, "task role %s: %s\n", role.c_str(), e.what());
    }
    return 1;
}

// Started by a runner as a task, this program runs its role and exits here, while static
// objects are initialised, before GoogleTest's main() would run the tests.
const bool not_a_task = [] {
    if (const char* role = std::getenv(role_variable)) {
        std::fflush(nullptr);
        std::exit(run_task_role(role));
    }
    return true;
}();

// This program's path, which the test pipelines run in their task roles.
std::string self_path() {
    char path[4096];
    const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    return n > 0 ? std::string(path, static_cast<std::size_t>(n)) : std::string("/proc/self/exe");
}

// Declares task `name` of `pipeline`: this program in role `role`.
shmline::Pipeline& add_role(shmline::Pipeline& pipeline, const std::string& name,
                            const char* role) {
    return pipeline.add_task(name, {self_path()}).task_set_env(name, role_variable, role);
}

// Stream options of the pipeline tests' streams: raw frames of PIPELINE_FRAME bytes.
shmline::StreamOptions pipeline_stream(std::uint32_t capacity = 8) {
    shmline::StreamOptions options;
    options.max_frame_size = PIPELINE_FRAME;
    options.capacity = capacity;
    return options;
}

// ---------------------------------------------------------------------------------------------
// Status, errors, versions

TEST(Status, NamesAndClassesFollowTheCApi) {
    EXPECT_STREQ(shmline::status_name(Status::EndOfStream), "END_OF_STREAM");
    EXPECT_STREQ(shmline::status_name(Status::NotFound), "NOT_FOUND");
    EXPECT_STREQ(shmline::status_name(static_cast<Status>(1000)), "UNKNOWN");
    EXPECT_STRNE(shmline::status_description(Status::Full), "");
    EXPECT_TRUE(shmline::is_error(Status::Corrupt));
    EXPECT_FALSE(shmline::is_error(Status::Timeout));
    EXPECT_FALSE(shmline::is_error(Status::Ok));
}

TEST(Status, TheLoadedLibraryIsTheVersionOfTheHeaders) {
    const std::string expected = std::to_string(SHMLINE_VERSION_MAJOR) + "." +
                                 std::to_string(SHMLINE_VERSION_MINOR) + "." +
                                 std::to_string(SHMLINE_VERSION_PATCH);
    EXPECT_EQ(shmline::version(), expected);
    EXPECT_EQ(shmline::layout_version(), static_cast<std::uint32_t>(SHMLINE_LAYOUT_VERSION));
}

TEST(Error, OpeningAMissingStreamThrowsNotFoundWithTheLibrarysMessage) {
    const std::string name = unique_name("missing");
    try {
        shmline::Stream::open(name);
        FAIL() << "opening a missing stream did not throw";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::NotFound);
        EXPECT_NE(std::string(e.message()).find(name), std::string::npos) << e.message();
        EXPECT_EQ(std::string(e.what()), std::string("NOT_FOUND: ") + e.message());
    }
}

TEST(Error, IsARuntimeErrorSoGenericHandlersCatchIt) {
    EXPECT_THROW(shmline::Event::open(unique_name("missing")), std::runtime_error);
}

TEST(Error, CreatingAStreamWhoseNameIsTakenThrowsAlreadyExists) {
    shmline::Stream first = small_stream("taken");
    shmline::StreamOptions options;
    options.max_frame_size = 16;
    EXPECT_EQ(thrown([&] { shmline::Stream::create(first.name(), options); }), Status::AlreadyExists);
}

TEST(Error, AnInvalidNameThrowsInvalidName) {
    EXPECT_EQ(thrown([] { shmline::Stream::open("no/slash"); }), Status::InvalidName);
    EXPECT_EQ(thrown([] { shmline::Event::create(""); }), Status::InvalidName);
}

TEST(Error, AStreamWithoutFrameSizeOrSchemaThrowsInvalidArgumentAndSaysWhy) {
    try {
        shmline::Stream::create(unique_name("nosize"));
        FAIL() << "creating a stream without a frame size did not throw";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::InvalidArgument);
        EXPECT_STRNE(e.message(), "");
    }
}

// ---------------------------------------------------------------------------------------------
// Stream: RAII, moves, facts

TEST(Stream, DestroyingAnUnlinkOnCloseStreamRemovesItsName) {
    std::string name;
    {
        shmline::Stream stream = small_stream("raii");
        name = stream.name();
        EXPECT_NO_THROW(shmline::Stream::open(name));
    }
    EXPECT_EQ(thrown([&] { shmline::Stream::open(name); }), Status::NotFound);
}

TEST(Stream, AStreamCreatedWithoutUnlinkOnCloseLivesUntilUnlinked) {
    const std::string name = unique_name("persistent");
    shmline::StreamOptions options;
    options.max_frame_size = 16;
    shmline::Stream::create(name, options).close();
    EXPECT_TRUE(shmline::Stream::open(name));
    shmline::Stream::unlink(name);
    EXPECT_EQ(thrown([&] { shmline::Stream::open(name); }), Status::NotFound);
    EXPECT_EQ(thrown([&] { shmline::Stream::unlink(name); }), Status::NotFound);
}

TEST(Stream, RemoveStaleRecoversANameLeftByADeadProcessAndSparesALiveOne) {
    const std::string name = unique_name("stale");
    const pid_t child = fork();
    if (child == 0) {
        // A process that creates a stream and an event, then dies without closing them.
        shmline::StreamOptions options;
        options.max_frame_size = 16;
        try {
            shmline::Stream::create(name, options).close();
            shmline::Event::create(name).close();
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    int status = -1;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmline::StreamOptions options;
    options.max_frame_size = 16;
    options.unlink_on_close = true;
    try {
        shmline::Stream::create(name, options);
        ADD_FAILURE() << "creating over a stale stream did not throw";
    } catch (const shmline::Error& e) {
        // The message names the C++ call that recovers the name, not the C or Rust one.
        EXPECT_EQ(e.status(), Status::AlreadyExists);
        EXPECT_NE(std::string(e.message()).find("shmline::Stream::remove_stale"),
                  std::string::npos)
            << e.message();
        EXPECT_EQ(std::string(e.message()).find("shmline_stream_remove_stale"), std::string::npos)
            << e.message();
    }
    try {
        shmline::Event::create(name);
        ADD_FAILURE() << "creating over a stale event did not throw";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::AlreadyExists);
        EXPECT_NE(std::string(e.message()).find("shmline::Event::remove_stale"), std::string::npos)
            << e.message();
    }
    EXPECT_TRUE(shmline::Stream::remove_stale(name));
    EXPECT_FALSE(shmline::Stream::remove_stale(name));
    shmline::Stream stream = shmline::Stream::create(name, options);
    EXPECT_EQ(thrown([&] { (void)shmline::Stream::remove_stale(name); }), Status::AlreadyExists);
    EXPECT_TRUE(shmline::Event::remove_stale(name));
    EXPECT_FALSE(shmline::Event::remove_stale(name));
}

TEST(Stream, MovingTransfersTheHandleAndLeavesTheSourceEmpty) {
    shmline::Stream a = small_stream("move");
    const std::string name = a.name();
    shmline::Stream b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
    EXPECT_TRUE(b);
    EXPECT_EQ(b.name(), name);
    EXPECT_EQ(a.name(), "");  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(thrown([&] { a.info(); }), Status::NullPointer);

    shmline::Stream c;
    c = std::move(b);
    EXPECT_EQ(c.name(), name);
    EXPECT_EQ(c.info().max_frame_size, 64u);
}

TEST(Stream, MoveAssigningOverAStreamClosesTheOldOne) {
    shmline::Stream a = small_stream("overwritten");
    const std::string name = a.name();
    a = small_stream("replacement");
    EXPECT_EQ(thrown([&] { shmline::Stream::open(name); }), Status::NotFound);
}

TEST(Stream, CloseIsIdempotent) {
    shmline::Stream stream = small_stream("close");
    stream.close();
    stream.close();
    EXPECT_FALSE(stream);
    EXPECT_EQ(stream.handle(), nullptr);
}

TEST(Stream, InfoReportsTheOptionsTheStreamWasCreatedWith) {
    shmline::StreamOptions options;
    options.capacity = 16;
    options.max_frame_size = 100;
    options.max_readers = 3;
    options.checksum = true;
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("info"), options);
    const shmline::StreamInfo info = stream.info();
    EXPECT_EQ(info.capacity, 16u);
    EXPECT_EQ(info.max_frame_size, 100u);
    EXPECT_EQ(info.max_readers, 3u);
    EXPECT_TRUE(info.checksum);
    EXPECT_FALSE(info.has_schema);
    EXPECT_EQ(info.creator_pid, static_cast<std::uint32_t>(getpid()));
}

TEST(Stream, ASchemaIsStoredAndRawStreamsHaveNone) {
    shmline::StreamOptions options;
    options.schema = shmline::Schema{"<f4", {2, 3}};
    options.unlink_on_close = true;
    shmline::Stream typed = shmline::Stream::create(unique_name("schema"), options);
    EXPECT_EQ(typed.schema(), (shmline::Schema{"<f4", {2, 3}}));
    EXPECT_TRUE(typed.info().has_schema);
    EXPECT_EQ(typed.info().max_frame_size, 2u * 3u * 4u);

    const shmline::Schema none = small_stream("raw").schema();
    EXPECT_TRUE(none.empty());
    EXPECT_TRUE(none.shape.empty());
}

TEST(Stream, AReaderRequiringAnotherSchemaThrowsSchemaMismatch) {
    shmline::StreamOptions options;
    options.schema = shmline::Schema{"<f4", {4}};
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("require"), options);

    shmline::ReaderOptions wrong;
    wrong.require_schema = shmline::Schema{"<f8", {4}};
    EXPECT_EQ(thrown([&] { stream.reader(wrong); }), Status::SchemaMismatch);

    shmline::ReaderOptions right;
    right.require_schema = shmline::Schema{"<f4", {4}};
    EXPECT_TRUE(stream.reader(right));
}

TEST(Stream, ListIncludesEveryOpenStream) {
    shmline::Stream stream = small_stream("list");
    const std::vector<std::string> names = shmline::Stream::list();
    EXPECT_NE(std::find(names.begin(), names.end(), stream.name()), names.end());
}

TEST(Stream, StatsCountFramesWriterAndReaders) {
    shmline::Stream stream = small_stream("stats");
    shmline::Reader reader = stream.reader();
    EXPECT_EQ(stream.stats().writer_state, shmline::WriterState::None);
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("abc")), Status::Ok);
    ASSERT_EQ(writer.write(bytes("de")), Status::Ok);

    shmline::StreamStats stats = stream.stats();
    EXPECT_EQ(stats.capacity, 8u);
    EXPECT_EQ(stats.writer_state, shmline::WriterState::Active);
    EXPECT_EQ(stats.writer_pid, static_cast<std::uint32_t>(getpid()));
    EXPECT_EQ(stats.frames_written, 2u);
    EXPECT_EQ(stats.bytes_written, 5u);
    ASSERT_EQ(stats.readers.size(), 1u);
    EXPECT_EQ(stats.readers[0].lag, 2u);
    EXPECT_TRUE(stats.readers[0].alive);
    EXPECT_DOUBLE_EQ(stats.fill, 2.0 / 8.0);

    writer.close();
    EXPECT_EQ(stream.stats().writer_state, shmline::WriterState::Closed);
}

// ---------------------------------------------------------------------------------------------
// Writer and Reader: copies

TEST(Frames, WrittenFramesAreReadBackInOrderWithTheirFlags) {
    shmline::Stream stream = small_stream("order");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (int i = 0; i < 20; i++) {  // several laps of the 8-slot ring
        ASSERT_EQ(writer.write(bytes("frame " + std::to_string(i)), static_cast<std::uint32_t>(i)),
                  Status::Ok);
        std::array<std::byte, 64> buffer{};
        shmline::FrameInfo info{};
        ASSERT_EQ(reader.read(buffer, info, patience), Status::Ok);
        EXPECT_EQ(info.seq, static_cast<std::uint64_t>(i));
        EXPECT_EQ(info.flags, static_cast<std::uint32_t>(i));
        EXPECT_EQ(text({buffer.data(), info.len}), "frame " + std::to_string(i));
    }
    EXPECT_EQ(writer.position(), 20u);
    EXPECT_EQ(reader.position(), 20u);
}

TEST(Frames, PointerAndSizeOverloadsWriteTheSameBytes) {
    shmline::Stream stream = small_stream("pointer");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    const std::string hello = "hello";
    ASSERT_EQ(writer.write(hello.data(), hello.size(), 7), Status::Ok);
    ASSERT_EQ(writer.try_write("hi", 2), Status::Ok);
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    ASSERT_EQ(reader.read(buffer, info), Status::Ok);
    EXPECT_EQ(text({buffer.data(), info.len}), "hello");
    EXPECT_EQ(info.flags, 7u);
    ASSERT_EQ(reader.try_read(buffer, info), Status::Ok);
    EXPECT_EQ(text({buffer.data(), info.len}), "hi");
}

TEST(Frames, TryCallsReportFullAndEmptyWithoutBlocking) {
    shmline::Stream stream = small_stream("try", 2);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    EXPECT_EQ(reader.try_read(buffer, info), Status::Empty);
    EXPECT_EQ(writer.try_write(bytes("1")), Status::Ok);
    EXPECT_EQ(writer.try_write(bytes("2")), Status::Ok);
    EXPECT_EQ(writer.try_write(bytes("3")), Status::Full);
    EXPECT_EQ(writer.write(bytes("3"), 0, 0ms), Status::Full);
    EXPECT_EQ(reader.try_read(buffer, info), Status::Ok);
    EXPECT_EQ(writer.try_write(bytes("3")), Status::Ok);
}

TEST(Frames, BlockingCallsReturnTimeoutWhenTheirTimeoutPasses) {
    shmline::Stream stream = small_stream("timeout", 1);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    EXPECT_EQ(reader.read(buffer, info, 1ms), Status::Timeout);
    ASSERT_EQ(writer.write(bytes("fills the ring")), Status::Ok);
    EXPECT_EQ(writer.write(bytes("no room"), 0, 1ms), Status::Timeout);
    EXPECT_EQ(writer.reserve(1ms).status(), Status::Timeout);
}

TEST(Frames, DestroyingTheWriterEndsTheStreamAfterTheLastFrame) {
    shmline::Stream stream = small_stream("eos");
    shmline::Reader reader = stream.reader();
    {
        shmline::Writer writer = stream.writer();
        ASSERT_EQ(writer.write(bytes("last")), Status::Ok);
    }
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    EXPECT_EQ(reader.read(buffer, info, patience), Status::Ok);
    EXPECT_EQ(reader.read(buffer, info, patience), Status::EndOfStream);
    EXPECT_EQ(reader.try_read(buffer, info), Status::EndOfStream);
    EXPECT_EQ(reader.acquire(patience).status(), Status::EndOfStream);
    // A stream has one writer for its whole life.
    EXPECT_EQ(thrown([&] { stream.writer(); }), Status::WrongState);
}

TEST(Frames, MoveAssigningOverAWriterClosesItAndEndsTheStream) {
    shmline::Stream stream = small_stream("replace-writer");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    EXPECT_EQ(thrown([&] { stream.writer(); }), Status::WriterExists);
    writer = shmline::Writer();
    EXPECT_FALSE(writer);
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    EXPECT_EQ(reader.read(buffer, info, patience), Status::EndOfStream);
}

TEST(Frames, ReadingIntoATooSmallBufferThrowsBufferTooSmallAndKeepsTheFrame) {
    shmline::Stream stream = small_stream("small");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("twelve bytes")), Status::Ok);
    std::array<std::byte, 4> tiny{};
    shmline::FrameInfo info{};
    EXPECT_EQ(thrown([&] { static_cast<void>(reader.read(tiny, info)); }), Status::BufferTooSmall);
    EXPECT_EQ(reader.try_read(tiny, info), Status::BufferTooSmall);
    EXPECT_EQ(info.len, 12u);
    EXPECT_NE(shmline::last_error_message(), "");
    std::array<std::byte, 12> enough{};
    ASSERT_EQ(reader.read(enough, info), Status::Ok);
    EXPECT_EQ(text(enough), "twelve bytes");
}

TEST(Frames, AFrameLargerThanTheMaximumThrowsFrameTooLarge) {
    shmline::Stream stream = small_stream("large", 8, 4);
    shmline::Writer writer = stream.writer();
    EXPECT_EQ(thrown([&] { (void)writer.write(bytes("too long")); }), Status::FrameTooLarge);
    EXPECT_EQ(writer.try_write(bytes("too long")), Status::FrameTooLarge);
    EXPECT_EQ(writer.position(), 0u);
}

TEST(Frames, CallsOnAClosedHandleFailWithNullPointer) {
    shmline::Stream stream = small_stream("closed");
    shmline::Writer writer = stream.writer();
    shmline::Reader reader = stream.reader();
    writer.close();
    reader.close();
    std::vector<std::byte> buffer(8);
    shmline::FrameInfo info{};
    EXPECT_EQ(writer.try_write(buffer), Status::NullPointer);
    EXPECT_EQ(reader.try_read(buffer, info), Status::NullPointer);
    EXPECT_EQ(writer.try_reserve().status(), Status::NullPointer);
    EXPECT_EQ(reader.try_acquire().status(), Status::NullPointer);
    EXPECT_EQ(thrown([&] { (void)writer.write(buffer); }), Status::NullPointer);
    EXPECT_EQ(thrown([&] { static_cast<void>(reader.read(buffer, info)); }), Status::NullPointer);
    EXPECT_EQ(thrown([&] { reader.position(); }), Status::NullPointer);
}

TEST(Frames, AReaderStartingAtTheOldestFrameSeesFramesWrittenBeforeItOpened) {
    shmline::Stream stream = small_stream("oldest");
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("early")), Status::Ok);
    shmline::ReaderOptions options;
    options.start = shmline::StartPosition::Oldest;
    shmline::Reader late = stream.reader(options);
    shmline::Reader next = stream.reader();
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    ASSERT_EQ(late.try_read(buffer, info), Status::Ok);
    EXPECT_EQ(text({buffer.data(), info.len}), "early");
    EXPECT_EQ(next.try_read(buffer, info), Status::Empty);
}

TEST(Frames, WaitForReadersReturnsOnceAReaderAttachesAndFalseOnTimeout) {
    shmline::Stream stream = small_stream("wait-readers");
    shmline::Writer writer = stream.writer();
    EXPECT_FALSE(writer.wait_for_readers(1, 1ms));
    std::thread attach([&] {
        shmline::Reader reader = stream.reader();
        // Stays attached until the writer has seen it and ended the stream.
        std::vector<std::byte> buffer(64);
        shmline::FrameInfo info{};
        EXPECT_EQ(reader.read(buffer, info, patience), Status::EndOfStream);
    });
    EXPECT_TRUE(writer.wait_for_readers(1, patience));
    writer.close();
    attach.join();
}

TEST(Frames, ALossyReaderIsToldHowManyFramesItMissed) {
    shmline::Stream stream = small_stream("lossy", 4);
    shmline::ReaderOptions options;
    options.lossy = true;
    shmline::Reader lossy = stream.reader(options);
    shmline::Writer writer = stream.writer();
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(writer.try_write(bytes(std::to_string(i))), Status::Ok) << "a lossy reader never holds the writer back";
    }
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    ASSERT_EQ(lossy.try_read(buffer, info), Status::Ok);
    EXPECT_GT(info.missed, 0u);
    EXPECT_EQ(lossy.missed(), info.missed);
    EXPECT_EQ(info.seq, info.missed);
    EXPECT_EQ(thrown([&] { static_cast<void>(lossy.acquire(0ms)); }), Status::Unsupported);
}

// ---------------------------------------------------------------------------------------------
// Batches

TEST(Batch, FramesWrittenInABatchAreReadBackInABatch) {
    shmline::Stream stream = small_stream("batch");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    const std::vector<std::byte> data = bytes("onetwothree");
    const std::array<std::size_t, 3> lengths{3, 3, 5};
    std::size_t written = 0;
    ASSERT_EQ(writer.write_batch(data, lengths, written, 9), Status::Ok);
    EXPECT_EQ(written, 3u);

    std::vector<std::byte> buffer(64);
    std::array<shmline::FrameInfo, 8> infos{};
    std::size_t count = 0;
    ASSERT_EQ(reader.read_batch(buffer, infos, count, patience), Status::Ok);
    ASSERT_EQ(count, 3u);
    EXPECT_EQ(text({buffer.data(), 11}), "onetwothree");
    for (std::size_t i = 0; i < count; i++) {
        EXPECT_EQ(infos[i].seq, i);
        EXPECT_EQ(infos[i].len, lengths[i]);
        EXPECT_EQ(infos[i].flags, 9u);
    }
    EXPECT_EQ(reader.try_read_batch(buffer, infos, count), Status::Empty);
    EXPECT_EQ(count, 0u);
}

TEST(Batch, TryWriteBatchWritesOnlyWhatFitsNow) {
    shmline::Stream stream = small_stream("batch-full", 2);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    const std::vector<std::byte> data = bytes("abc");
    const std::array<std::size_t, 3> lengths{1, 1, 1};
    std::size_t written = 0;
    ASSERT_EQ(writer.try_write_batch(data, lengths, written), Status::Ok);
    EXPECT_EQ(written, 2u);
    EXPECT_EQ(writer.try_write_batch(data, lengths, written), Status::Full);
    EXPECT_EQ(written, 0u);
}

TEST(Batch, LengthsAddingUpToMoreThanTheDataAreRefused) {
    shmline::Stream stream = small_stream("batch-bad");
    shmline::Writer writer = stream.writer();
    const std::vector<std::byte> data = bytes("abc");
    const std::array<std::size_t, 2> lengths{2, 2};
    std::size_t written = 7;
    EXPECT_EQ(thrown([&] { (void)writer.write_batch(data, lengths, written); }), Status::InvalidArgument);
    EXPECT_EQ(writer.try_write_batch(data, lengths, written), Status::InvalidArgument);
    EXPECT_EQ(written, 0u);
    EXPECT_EQ(writer.position(), 0u);
}

TEST(Batch, AReadBatchWithoutRoomForInfosThrowsInvalidArgument) {
    shmline::Stream stream = small_stream("batch-noinfo");
    shmline::Reader reader = stream.reader();
    std::vector<std::byte> buffer(64);
    std::size_t count = 0;
    EXPECT_EQ(thrown([&] {
                  static_cast<void>(reader.read_batch(buffer, shmline::Span<shmline::FrameInfo>(), count));
              }),
              Status::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Zero-copy guards

TEST(WriteSlot, IsPublishedWithItsDeclaredLengthAndFlagsOnScopeExit) {
    shmline::Stream stream = small_stream("slot");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    {
        shmline::WriteSlot slot = writer.reserve(patience);
        ASSERT_TRUE(slot);
        EXPECT_EQ(slot.capacity(), 64u);
        std::memcpy(slot.data(), "zero-copy", 9);
        slot.set_length(9);
        slot.set_flags(5);
        std::vector<std::byte> buffer(64);
        shmline::FrameInfo info{};
        EXPECT_EQ(reader.try_read(buffer, info), Status::Empty) << "not visible before the commit";
    }
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    ASSERT_EQ(reader.try_read(buffer, info), Status::Ok);
    EXPECT_EQ(text({buffer.data(), info.len}), "zero-copy");
    EXPECT_EQ(info.flags, 5u);
}

TEST(WriteSlot, CommitsTheWholeSlotByDefault) {
    shmline::StreamOptions options;
    options.schema = shmline::Schema{"<u4", {4}};
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("slot-full"), options);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    {
        shmline::WriteSlot slot = writer.reserve();
        const std::uint32_t values[4] = {1, 2, 3, 4};
        std::memcpy(slot.bytes().data(), values, sizeof values);
    }
    shmline::ReadSlot frame = reader.try_acquire();
    ASSERT_TRUE(frame);
    ASSERT_EQ(frame.size(), 16u);
    std::uint32_t values[4] = {};
    std::memcpy(values, frame.data(), sizeof values);
    EXPECT_EQ(values[3], 4u);
}

TEST(WriteSlot, IsDroppedUnpublishedWhenAnExceptionLeavesTheScope) {
    shmline::Stream stream = small_stream("slot-throw");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    try {
        shmline::WriteSlot slot = writer.reserve();
        std::memcpy(slot.data(), "half", 4);
        throw std::runtime_error("filling the frame failed");
    } catch (const std::runtime_error&) {
    }
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    EXPECT_EQ(reader.try_read(buffer, info), Status::Empty);
    EXPECT_EQ(writer.position(), 0u);
    EXPECT_EQ(writer.try_write(bytes("the writer is usable again")), Status::Ok);
}

TEST(WriteSlot, AbortPublishesNothingAndCommitPublishesOnce) {
    shmline::Stream stream = small_stream("slot-explicit");
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    {
        shmline::WriteSlot slot = writer.reserve();
        slot.abort();
        EXPECT_FALSE(slot);
        EXPECT_EQ(slot.data(), nullptr);
        slot.abort();  // harmless when empty
    }
    {
        shmline::WriteSlot slot = writer.reserve();
        std::memcpy(slot.data(), "once", 4);
        slot.commit(4, 1);
        EXPECT_FALSE(slot);
        EXPECT_EQ(thrown([&] { slot.commit(); }), Status::WrongState);
    }
    EXPECT_EQ(writer.position(), 1u);
    std::vector<std::byte> buffer(64);
    shmline::FrameInfo info{};
    ASSERT_EQ(reader.try_read(buffer, info), Status::Ok);
    EXPECT_EQ(text({buffer.data(), info.len}), "once");
    EXPECT_EQ(reader.try_read(buffer, info), Status::Empty);
}

TEST(WriteSlot, ALengthBeyondTheCapacityThrowsFrameTooLargeAndKeepsTheSlot) {
    shmline::Stream stream = small_stream("slot-large");
    shmline::Writer writer = stream.writer();
    shmline::WriteSlot slot = writer.reserve();
    EXPECT_EQ(thrown([&] { slot.set_length(65); }), Status::FrameTooLarge);
    EXPECT_EQ(thrown([&] { slot.commit(65); }), Status::FrameTooLarge);
    EXPECT_TRUE(slot);
    slot.commit(64);
    EXPECT_EQ(writer.position(), 1u);
}

TEST(WriteSlot, AMovedSlotIsPublishedByItsNewOwner) {
    shmline::Stream stream = small_stream("slot-move");
    shmline::Writer writer = stream.writer();
    {
        shmline::WriteSlot first = writer.reserve();
        first.set_length(1);
        shmline::WriteSlot second = std::move(first);
        EXPECT_FALSE(first);  // NOLINT(bugprone-use-after-move)
        EXPECT_TRUE(second);
        EXPECT_EQ(second.length(), 1u);
        EXPECT_EQ(writer.position(), 0u);
    }
    EXPECT_EQ(writer.position(), 1u);
}

TEST(WriteSlot, MoveAssigningOverAReservedSlotPublishesItFirst) {
    shmline::Stream stream_a = small_stream("slot-assign-a");
    shmline::Stream stream_b = small_stream("slot-assign-b");
    shmline::Writer writer_a = stream_a.writer();
    shmline::Writer writer_b = stream_b.writer();
    {
        shmline::WriteSlot slot = writer_a.reserve();
        slot = writer_b.reserve();
        EXPECT_EQ(writer_a.position(), 1u);
        EXPECT_EQ(writer_b.position(), 0u);
    }
    EXPECT_EQ(writer_b.position(), 1u);
}

TEST(WriteSlot, WritingOrReservingWhileASlotIsReservedThrowsWrongState) {
    shmline::Stream stream = small_stream("slot-busy");
    shmline::Writer writer = stream.writer();
    shmline::WriteSlot slot = writer.reserve();
    EXPECT_EQ(thrown([&] { (void)writer.write(bytes("x")); }), Status::WrongState);
    EXPECT_EQ(thrown([&] { static_cast<void>(writer.reserve()); }), Status::WrongState);
    EXPECT_EQ(writer.try_reserve().status(), Status::WrongState);
    slot.abort();
    EXPECT_EQ(writer.try_write(bytes("x")), Status::Ok);
}

TEST(WriteSlot, ReservingOnAFullRingGivesAnEmptySlotWithStatusFull) {
    shmline::Stream stream = small_stream("slot-fullring", 1);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("x")), Status::Ok);
    shmline::WriteSlot slot = writer.try_reserve();
    EXPECT_FALSE(slot);
    EXPECT_EQ(slot.status(), Status::Full);
    EXPECT_EQ(slot.capacity(), 0u);
    EXPECT_TRUE(slot.bytes().empty());
}

TEST(ReadSlot, AnAcquiredFrameHoldsItsSlotUntilScopeExit) {
    shmline::Stream stream = small_stream("acquire", 2);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("first")), Status::Ok);
    {
        shmline::ReadSlot frame = reader.acquire(patience);
        ASSERT_TRUE(frame);
        EXPECT_EQ(frame.status(), Status::Ok);
        EXPECT_EQ(text(frame.bytes()), "first");
        EXPECT_EQ(frame.info().seq, 0u);
        EXPECT_EQ(writer.try_write(bytes("second")), Status::Ok);
        EXPECT_EQ(writer.try_write(bytes("third")), Status::Full) << "the acquired slot is held";
        EXPECT_EQ(thrown([&] { static_cast<void>(reader.acquire()); }), Status::WrongState);
    }
    EXPECT_EQ(writer.try_write(bytes("third")), Status::Ok);
    shmline::ReadSlot frame = reader.try_acquire();
    ASSERT_TRUE(frame);
    EXPECT_EQ(text(frame.bytes()), "second");
    frame.release();
    EXPECT_FALSE(frame);
    EXPECT_EQ(frame.data(), nullptr);
    frame.release();  // harmless when empty
}

TEST(ReadSlot, AMovedFrameIsReleasedByItsNewOwner) {
    shmline::Stream stream = small_stream("acquire-move", 1);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    ASSERT_EQ(writer.write(bytes("a")), Status::Ok);
    shmline::ReadSlot outer = reader.try_acquire();
    {
        shmline::ReadSlot inner = std::move(outer);
        EXPECT_FALSE(outer);  // NOLINT(bugprone-use-after-move)
        EXPECT_EQ(text(inner.bytes()), "a");
        EXPECT_EQ(writer.try_write(bytes("b")), Status::Full);
    }
    EXPECT_EQ(writer.try_write(bytes("b")), Status::Ok);
    outer = reader.try_acquire();
    EXPECT_EQ(text(outer.bytes()), "b");
}

TEST(ReadSlot, AnEmptyRingGivesAnEmptySlotWithStatusEmptyOrTimeout) {
    shmline::Stream stream = small_stream("acquire-empty");
    shmline::Reader reader = stream.reader();
    if (shmline::ReadSlot frame = reader.try_acquire()) {
        FAIL() << "acquired a frame from an empty ring";
    } else {
        EXPECT_EQ(frame.status(), Status::Empty);
        EXPECT_EQ(frame.size(), 0u);
    }
    EXPECT_EQ(reader.acquire(1ms).status(), Status::Timeout);
}

// ---------------------------------------------------------------------------------------------
// Events

shmline::Event temporary_event(shmline::EventMode mode) {
    shmline::EventOptions options;
    options.mode = mode;
    options.unlink_on_close = true;
    return shmline::Event::create(unique_name("event"), options);
}

TEST(Event, AFlagStaysSetUntilClearedAndReleasesEveryWait) {
    shmline::Event event = temporary_event(shmline::EventMode::Flag);
    EXPECT_EQ(event.mode(), shmline::EventMode::Flag);
    EXPECT_FALSE(event.is_set());
    EXPECT_EQ(event.try_wait(), Status::Empty);
    event.set();
    EXPECT_TRUE(event.is_set());
    EXPECT_TRUE(event.wait(patience));
    EXPECT_TRUE(event.wait(patience));
    EXPECT_EQ(event.count(), 1u);
    event.clear();
    EXPECT_FALSE(event.wait(1ms));
}

TEST(Event, ACountingEventReleasesOneWaitPerSet) {
    shmline::Event event = temporary_event(shmline::EventMode::Counting);
    event.set();
    event.set();
    EXPECT_EQ(event.count(), 2u);
    EXPECT_EQ(event.try_wait(), Status::Ok);
    EXPECT_TRUE(event.wait(patience));
    EXPECT_EQ(event.try_wait(), Status::Empty);
    EXPECT_FALSE(event.wait(1ms));
}

TEST(Event, ASetFromAnotherThreadThroughAnotherHandleWakesAWaiter) {
    shmline::EventOptions options;
    options.mode = shmline::EventMode::Counting;
    const std::string name = unique_name("event-thread");
    shmline::Event event = shmline::Event::create(name, options);
    std::thread setter([&] { shmline::Event::open(name).set(); });
    EXPECT_TRUE(event.wait(patience));
    setter.join();
    shmline::Event::unlink(name);
    EXPECT_EQ(thrown([&] { shmline::Event::open(name); }), Status::NotFound);
    EXPECT_FALSE(event.is_set()) << "the handle still works after unlink";
}

TEST(Event, AMovedFromEventIsEmptyAndItsCallsThrowNullPointer) {
    shmline::Event event = temporary_event(shmline::EventMode::Flag);
    shmline::Event other = std::move(event);
    EXPECT_FALSE(event);  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(other);
    EXPECT_EQ(thrown([&] { event.set(); }), Status::NullPointer);
    EXPECT_EQ(event.try_wait(), Status::NullPointer);
}

// ---------------------------------------------------------------------------------------------
// Multi-writer streams and reader groups

// Frame `i` of writer `id` in a multi-writer test: the two numbers, 8 bytes each.
std::array<std::uint64_t, 2> fan_frame(std::uint64_t id, std::uint64_t i) {
    return {id, i};
}

// The bytes of a multi-writer test frame, for reading into it.
shmline::MutableBytes frame_bytes(std::array<std::uint64_t, 2>& frame) {
    return {reinterpret_cast<std::byte*>(frame.data()), sizeof frame};
}

shmline::Stream fan_stream(const char* what, std::uint32_t max_writers,
                           std::uint32_t capacity = 8) {
    shmline::StreamOptions options;
    options.capacity = capacity;
    options.max_frame_size = sizeof(std::array<std::uint64_t, 2>);
    options.max_writers = max_writers;
    options.unlink_on_close = true;
    return shmline::Stream::create(unique_name(what), options);
}

// Reads until end of stream, checking every sequence number comes once and each writer's frames
// in its order; returns how many frames of each of `writers` writers arrived.
std::vector<std::uint64_t> read_fan_in(shmline::Reader& reader, std::size_t writers) {
    std::vector<std::uint64_t> next(writers, 0);
    std::array<std::uint64_t, 2> frame{};
    shmline::FrameInfo info{};
    for (std::uint64_t seq = 0;; seq++) {
        const Status status = reader.read(frame_bytes(frame), info, patience);
        if (status != Status::Ok) {
            EXPECT_EQ(status, Status::EndOfStream);
            return next;
        }
        EXPECT_EQ(info.seq, seq);
        EXPECT_EQ(info.missed, 0u);
        EXPECT_LT(frame[0], writers);
        if (frame[0] >= writers || testing::Test::HasFailure()) {
            return next;
        }
        EXPECT_EQ(frame[1], next[frame[0]]) << "writer " << frame[0] << "'s frames in its order";
        next[frame[0]]++;
    }
}

TEST(MultiWriter, WriterThreadsFeedingOneStreamDeliverEveryFrameOnceInEachWritersOrder) {
    constexpr std::size_t writers = 3;
    constexpr std::uint64_t frames = 5000;
    shmline::Stream stream = fan_stream("fanin-threads", writers);
    EXPECT_EQ(stream.info().max_writers, writers);
    shmline::Reader reader = stream.reader();
    // Every writer attaches before any can close, so the stream cannot end early.
    std::vector<shmline::Writer> handles;
    for (std::size_t id = 0; id < writers; id++) {
        handles.push_back(stream.writer());
    }
    EXPECT_EQ(stream.stats().writer_count, writers);
    std::vector<std::thread> threads;
    for (std::size_t id = 0; id < writers; id++) {
        threads.emplace_back([&, id] {
            shmline::Writer writer = std::move(handles[id]);
            for (std::uint64_t i = 0; i < frames; i++) {
                const auto frame = fan_frame(id, i);
                if (writer.write(frame.data(), sizeof frame, 0, patience) != Status::Ok) {
                    return;  // the reader fails the test: it misses this writer's frames
                }
            }
        });
    }
    const std::vector<std::uint64_t> got = read_fan_in(reader, writers);
    reader.close();  // a failed reader must not hold the writers back
    for (std::thread& t : threads) {
        t.join();
    }
    EXPECT_EQ(got, std::vector<std::uint64_t>(writers, frames));
    const shmline::StreamStats stats = stream.stats();
    EXPECT_EQ(stats.frames_written, writers * frames);
    EXPECT_EQ(stats.frames_skipped, 0u);
    EXPECT_EQ(stats.writer_count, 0u);
    EXPECT_EQ(stats.writer_state, shmline::WriterState::Closed);
}

TEST(MultiWriter, WriterProcessesAndTheParentFeedOneStreamThatEndsWhenTheLastCloses) {
    constexpr std::size_t children = 2;
    constexpr std::uint64_t frames = 3000;
    shmline::Stream stream = fan_stream("fanin-processes", children + 1);
    shmline::Reader reader = stream.reader();
    // Open while the children write: the stream cannot end before they attached. Its frame goes
    // first: once the children fill the ring, only the reader below makes room.
    shmline::Writer parent = stream.writer();
    const auto mine = fan_frame(children, 0);
    ASSERT_EQ(parent.write(mine.data(), sizeof mine, 0, patience), Status::Ok);
    std::vector<pid_t> pids;
    for (std::size_t id = 0; id < children; id++) {
        std::fflush(nullptr);
        const pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            int code = 0;
            try {
                shmline::Writer writer = shmline::Stream::open(stream.name()).writer();
                for (std::uint64_t i = 0; i < frames; i++) {
                    const auto frame = fan_frame(id, i);
                    if (writer.write(frame.data(), sizeof frame, 0, patience) != Status::Ok) {
                        code = 2;
                        break;
                    }
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child writer %zu: %s\n", id, e.what());
                code = 1;
            }
            _exit(code);
        }
        pids.push_back(child);
    }
    std::vector<std::uint64_t> next(children + 1, 0);
    std::array<std::uint64_t, 2> frame{};
    shmline::FrameInfo info{};
    std::uint64_t total = 0;
    while (total < children * frames + 1 && !testing::Test::HasFailure()) {
        ASSERT_EQ(reader.read(frame_bytes(frame), info, patience), Status::Ok);
        EXPECT_EQ(info.seq, total);
        ASSERT_LE(frame[0], children);
        EXPECT_EQ(frame[1], next[frame[0]]++);
        total++;
    }
    parent.close();
    EXPECT_EQ(reader.read(frame_bytes(frame), info, patience), Status::EndOfStream);
    reader.close();
    for (const pid_t child : pids) {
        int wstatus = 0;
        ASSERT_EQ(waitpid(child, &wstatus, 0), child);
        EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "wait status " << wstatus;
    }
    EXPECT_EQ(next, (std::vector<std::uint64_t>{frames, frames, 1}));
}

TEST(MultiWriter, ASecondWriterOnASingleWriterStreamThrowsWriterExistsNamingMaxWriters) {
    shmline::Stream stream = small_stream("single-writer");
    EXPECT_EQ(stream.info().max_writers, 1u);
    shmline::Writer writer = stream.writer();
    try {
        stream.writer();
        ADD_FAILURE() << "a second writer was accepted";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::WriterExists);
        EXPECT_NE(std::string(e.message()).find("max_writers"), std::string::npos)
            << e.message();
    }
}

TEST(MultiWriter, MoreWritersThanMaxWritersThrowTooManyWritersUntilOneCloses) {
    shmline::Stream stream = fan_stream("too-many-writers", 2);
    shmline::Writer first = stream.writer();
    shmline::Writer second = stream.writer();
    EXPECT_EQ(thrown([&] { stream.writer(); }), Status::TooManyWriters);
    first.close();
    EXPECT_TRUE(stream.writer());
}

TEST(MultiWriter, AnAbortedReservationIsSkippedCountedAndReportedToReaders) {
    shmline::Stream stream = fan_stream("aborted", 2);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    writer.reserve().abort();
    const auto frame = fan_frame(0, 0);
    ASSERT_EQ(writer.write(frame.data(), sizeof frame), Status::Ok);
    std::array<std::uint64_t, 2> got{};
    shmline::FrameInfo info{};
    ASSERT_EQ(reader.read(frame_bytes(got), info, patience), Status::Ok);
    EXPECT_EQ(info.seq, 1u);
    EXPECT_EQ(info.missed, 1u);
    EXPECT_EQ(reader.missed(), 1u);
    const shmline::StreamStats stats = stream.stats();
    EXPECT_EQ(stats.frames_skipped, 1u);
    EXPECT_EQ(stats.frames_written, 1u);
    EXPECT_EQ(stats.writer_count, 1u);
    EXPECT_EQ(stats.writer_pid, 0u);
}

TEST(Backpressure, DropNewestDiscardsFramesOnAFullRingAndCountsThem) {
    shmline::StreamOptions options;
    options.capacity = 2;
    options.max_frame_size = 8;
    options.backpressure = shmline::Backpressure::DropNewest;
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("drop-newest"), options);
    EXPECT_EQ(stream.info().backpressure, SHMLINE_BACKPRESSURE_DROP_NEWEST);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (int i = 0; i < 3; i++) {
        EXPECT_EQ(writer.write(bytes("frame"), 0, 0s), Status::Ok);
    }
    EXPECT_EQ(writer.frames_dropped(), 1u);
    EXPECT_EQ(stream.stats().frames_dropped, 1u);
}

// A stream of 4 slots of 8-byte frames under `policy`.
shmline::Stream policy_stream(const char* what, shmline::Backpressure policy) {
    shmline::StreamOptions options;
    options.capacity = 4;
    options.max_frame_size = 8;
    options.backpressure = policy;
    options.unlink_on_close = true;
    return shmline::Stream::create(unique_name(what), options);
}

// Writes frame `i` (the 8 bytes of `i`).
Status write_number(shmline::Writer& writer, std::uint64_t i,
                    shmline::Timeout timeout = shmline::forever) {
    return writer.write(&i, sizeof i, 0, timeout);
}

// The numbers of the frames a reader can read now.
std::vector<std::uint64_t> drain_numbers(shmline::Reader& reader) {
    std::vector<std::uint64_t> got;
    std::uint64_t number = 0;
    shmline::FrameInfo info{};
    while (reader.try_read(shmline::MutableBytes(reinterpret_cast<std::byte*>(&number),
                                                 sizeof number),
                           info) == Status::Ok) {
        got.push_back(number);
    }
    return got;
}

TEST(Backpressure, BlockWaitsForSpaceUntilTheTimeoutAndTheReaderGetsEveryFrame) {
    shmline::Stream stream = policy_stream("bp-block", shmline::Backpressure::Block);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (std::uint64_t i = 0; i < 4; i++) {
        EXPECT_EQ(write_number(writer, i), Status::Ok);
    }
    EXPECT_EQ(write_number(writer, 99, 1ms), Status::Timeout);
    EXPECT_EQ(write_number(writer, 99, 0s), Status::Full);
    shmline::WriteSlot slot = writer.reserve(1ms);
    EXPECT_FALSE(slot);
    EXPECT_EQ(slot.status(), Status::Timeout);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(write_number(writer, 4), Status::Ok);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(writer.frames_dropped(), 0u);
}

TEST(Backpressure, FailReturnsFullAtOnceEvenWithAnInfiniteTimeout) {
    shmline::Stream stream = policy_stream("bp-fail", shmline::Backpressure::Fail);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (std::uint64_t i = 0; i < 3; i++) {
        EXPECT_EQ(write_number(writer, i), Status::Ok);
    }
    // One slot left: a batch of three writes its first frame and says so.
    const std::array<std::uint64_t, 3> batch{3, 98, 99};
    const std::array<std::size_t, 3> lengths{8, 8, 8};
    std::size_t written = 0;
    const shmline::ConstBytes data(reinterpret_cast<const std::byte*>(batch.data()),
                                   sizeof batch);
    EXPECT_EQ(writer.write_batch(data, lengths, written), Status::Ok);
    EXPECT_EQ(written, 1u);
    EXPECT_EQ(write_number(writer, 99), Status::Full);
    EXPECT_EQ(writer.write_batch(data, lengths, written), Status::Full);
    EXPECT_EQ(written, 0u);
    shmline::WriteSlot slot = writer.reserve();
    EXPECT_FALSE(slot);
    EXPECT_EQ(slot.status(), Status::Full);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(write_number(writer, 4), Status::Ok);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(writer.frames_dropped(), 0u);
}

TEST(Backpressure, DropNewestDiscardsCopyWritesAndRefusesAReservationWithFull) {
    shmline::Stream stream = policy_stream("bp-drop-newest", shmline::Backpressure::DropNewest);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (std::uint64_t i = 0; i < 4; i++) {
        EXPECT_EQ(write_number(writer, i), Status::Ok);
    }
    EXPECT_EQ(write_number(writer, 99), Status::Ok);  // discarded and counted
    shmline::WriteSlot slot = writer.reserve();
    EXPECT_FALSE(slot);
    EXPECT_EQ(slot.status(), Status::Full);
    EXPECT_EQ(writer.frames_dropped(), 1u);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{0, 1, 2, 3}));
    EXPECT_EQ(write_number(writer, 4), Status::Ok);
    EXPECT_EQ(drain_numbers(reader), (std::vector<std::uint64_t>{4}));
}

TEST(Backpressure, DropOldestNeverRefusesAndTheReaderSkipsToTheNewestFrames) {
    shmline::Stream stream = policy_stream("bp-drop-oldest", shmline::Backpressure::DropOldest);
    shmline::Reader reader = stream.reader();
    shmline::Writer writer = stream.writer();
    for (std::uint64_t i = 0; i < 11; i++) {
        EXPECT_EQ(write_number(writer, i), Status::Ok);
    }
    {
        shmline::WriteSlot slot = writer.reserve();
        ASSERT_TRUE(slot);
        const std::uint64_t last = 11;
        std::memcpy(slot.data(), &last, sizeof last);
        slot.set_length(sizeof last);
    }
    std::uint64_t first = 0;
    shmline::FrameInfo info{};
    ASSERT_EQ(reader.read(shmline::MutableBytes(reinterpret_cast<std::byte*>(&first),
                                                sizeof first),
                          info, patience),
              Status::Ok);
    EXPECT_GE(first, 12u - 4u);
    EXPECT_EQ(info.seq, first);
    EXPECT_EQ(info.missed, first);
    std::vector<std::uint64_t> rest;
    for (std::uint64_t i = first + 1; i < 12; i++) {
        rest.push_back(i);
    }
    EXPECT_EQ(drain_numbers(reader), rest);
    EXPECT_EQ(writer.frames_dropped(), 0u);
}

TEST(ReaderGroup, StreamsHaveRoomForFourGroupsByDefault) {
    EXPECT_EQ(shmline::StreamOptions{}.max_groups, 4u);
    EXPECT_EQ(small_stream("group-default").info().max_groups, 4u);
}

TEST(ReaderGroup, MemberThreadsShareEveryFrameExactlyOnceWhileAPlainReaderGetsThemAll) {
    constexpr std::uint64_t frames = 5000;
    shmline::Stream stream = fan_stream("group-threads", 1, 16);
    shmline::ReaderOptions member;
    member.group = "workers";
    std::vector<shmline::Reader> members;
    members.push_back(stream.reader(member));
    members.push_back(stream.reader(member));
    shmline::Reader plain = stream.reader();
    const shmline::StreamStats joined = stream.stats();
    EXPECT_EQ(joined.group_count, 1u);
    std::vector<std::string> groups;
    for (const shmline::ReaderStats& r : joined.readers) {
        groups.emplace_back(r.group);
    }
    std::sort(groups.begin(), groups.end());
    EXPECT_EQ(groups, (std::vector<std::string>{"", "workers", "workers"}));

    // Each member records the sequence numbers it got; the plain reader checks every one.
    std::vector<std::vector<std::uint64_t>> got(2);
    std::vector<std::thread> threads;
    for (std::size_t m = 0; m < 2; m++) {
        threads.emplace_back([&, m] {
            std::array<std::uint64_t, 2> frame{};
            shmline::FrameInfo info{};
            while (members[m].read(frame_bytes(frame), info, patience) == Status::Ok) {
                got[m].push_back(info.seq);
            }
            members[m].close();  // a failed member must not hold the writer back
        });
    }
    std::thread writing([&] {
        shmline::Writer writer = stream.writer();
        for (std::uint64_t i = 0; i < frames; i++) {
            const auto frame = fan_frame(0, i);
            if (writer.write(frame.data(), sizeof frame, 0, patience) != Status::Ok) {
                return;  // the readers fail the test: they miss frames
            }
        }
    });
    const std::vector<std::uint64_t> all = read_fan_in(plain, 1);
    plain.close();
    writing.join();
    for (std::thread& t : threads) {
        t.join();
    }
    EXPECT_EQ(all, std::vector<std::uint64_t>{frames});
    std::vector<std::uint64_t> shared;
    for (const std::vector<std::uint64_t>& mine : got) {
        EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end())) << "a member's frames in order";
        shared.insert(shared.end(), mine.begin(), mine.end());
    }
    std::sort(shared.begin(), shared.end());
    std::vector<std::uint64_t> every(frames);
    for (std::uint64_t i = 0; i < frames; i++) {
        every[i] = i;
    }
    EXPECT_EQ(shared, every) << "each frame to exactly one member";
    EXPECT_EQ(stream.stats().frames_redelivered, 0u);
}

TEST(ReaderGroup, MemberProcessesShareEveryFrameExactlyOnce) {
    constexpr std::uint64_t frames = 3000;
    shmline::Stream stream = fan_stream("group-processes", 1, 16);
    // Each member writes (member, seq) for every frame it got; room for all of them.
    shmline::Stream results = fan_stream("group-results", 2, 4096);
    shmline::Reader collected = results.reader();
    shmline::EventOptions counting;
    counting.mode = shmline::EventMode::Counting;
    counting.unlink_on_close = true;
    const std::string joined_name = unique_name("group-joined");
    shmline::Event joined = shmline::Event::create(joined_name, counting);
    std::vector<pid_t> pids;
    for (std::uint64_t m = 0; m < 2; m++) {
        std::fflush(nullptr);
        const pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            int code = 0;
            try {
                shmline::ReaderOptions member;
                member.group = "workers";
                shmline::Reader reader = shmline::Stream::open(stream.name()).reader(member);
                shmline::Writer out = shmline::Stream::open(results.name()).writer();
                shmline::Event::open(joined_name).set();
                std::array<std::uint64_t, 2> frame{};
                shmline::FrameInfo info{};
                Status status = Status::Ok;
                while ((status = reader.read(frame_bytes(frame), info, patience)) == Status::Ok) {
                    const auto mine = fan_frame(m, info.seq);
                    if (out.write(mine.data(), sizeof mine, 0, patience) != Status::Ok) {
                        code = 3;
                        break;
                    }
                }
                if (code == 0 && status != Status::EndOfStream) {
                    code = 2;
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "member %llu: %s\n", static_cast<unsigned long long>(m),
                             e.what());
                code = 1;
            }
            _exit(code);
        }
        pids.push_back(child);
    }
    // The group exists (and starts at frame 0) once both members joined.
    for (int m = 0; m < 2; m++) {
        ASSERT_TRUE(joined.wait(patience)) << "a member process did not join";
    }
    {
        shmline::Writer writer = stream.writer();
        for (std::uint64_t i = 0; i < frames && !testing::Test::HasFailure(); i++) {
            const auto frame = fan_frame(0, i);
            ASSERT_EQ(writer.write(frame.data(), sizeof frame, 0, patience), Status::Ok);
        }
    }
    std::vector<std::vector<std::uint64_t>> got(2);
    std::array<std::uint64_t, 2> frame{};
    shmline::FrameInfo info{};
    while (collected.read(frame_bytes(frame), info, patience) == Status::Ok) {
        ASSERT_LT(frame[0], 2u);
        got[frame[0]].push_back(frame[1]);
    }
    for (const pid_t child : pids) {
        int wstatus = 0;
        ASSERT_EQ(waitpid(child, &wstatus, 0), child);
        EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "wait status " << wstatus;
    }
    std::vector<std::uint64_t> shared;
    for (const std::vector<std::uint64_t>& mine : got) {
        EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end())) << "a member's frames in order";
        shared.insert(shared.end(), mine.begin(), mine.end());
    }
    std::sort(shared.begin(), shared.end());
    ASSERT_EQ(shared.size(), frames) << "each frame to exactly one member";
    for (std::uint64_t i = 0; i < frames; i++) {
        ASSERT_EQ(shared[i], i) << "each frame to exactly one member";
    }
}

TEST(ReaderGroup, JoiningWithAMismatchedSchemaThrowsSchemaMismatchAndCreatesNoGroup) {
    shmline::StreamOptions options;
    options.schema = shmline::Schema{"<f4", {4}};
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("group-schema"), options);
    shmline::ReaderOptions member;
    member.group = "workers";
    member.require_schema = shmline::Schema{"<f8", {4}};
    EXPECT_EQ(thrown([&] { stream.reader(member); }), Status::SchemaMismatch);
    EXPECT_EQ(stream.stats().group_count, 0u);
    EXPECT_TRUE(stream.stats().readers.empty());
    member.require_schema = shmline::Schema{"<f4", {4}};
    shmline::Reader reader = stream.reader(member);
    EXPECT_EQ(stream.stats().group_count, 1u);
}

TEST(ReaderGroup, ALossyMemberABadNameAndOneGroupTooManyAreRefused) {
    shmline::StreamOptions options;
    options.max_frame_size = 8;
    options.max_groups = 1;
    options.unlink_on_close = true;
    shmline::Stream stream = shmline::Stream::create(unique_name("group-errors"), options);
    EXPECT_EQ(stream.info().max_groups, 1u);
    shmline::ReaderOptions member;
    member.group = "workers";
    member.lossy = true;
    EXPECT_EQ(thrown([&] { stream.reader(member); }), Status::InvalidArgument);
    member.lossy = false;
    member.group = "a/b";
    EXPECT_EQ(thrown([&] { stream.reader(member); }), Status::InvalidName);
    member.group = std::string(64, 'g');
    EXPECT_EQ(thrown([&] { stream.reader(member); }), Status::InvalidName);
    member.group = "workers";
    shmline::Reader first = stream.reader(member);
    member.group = "others";
    try {
        stream.reader(member);
        ADD_FAILURE() << "a second group was accepted with max_groups 1";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::TooManyReaders);
        EXPECT_NE(std::string(e.message()).find("max_groups"), std::string::npos)
            << e.message();
    }
    first.close();  // the group ends with its last member, freeing its record
    EXPECT_TRUE(stream.reader(member));
}

// ---------------------------------------------------------------------------------------------
// Across processes

// The child: writes `frames` frames of tests/c/frames.h to the stream `name`, switching between
// copy, zero-copy and batch writes every chunk. Returns its exit status.
int write_frames_in_child(const std::string& name, std::uint64_t frames) {
    try {
        shmline::Writer writer = shmline::Stream::open(name).writer();
        std::vector<std::byte> batch(FRAMES_BATCH * FRAMES_MAX);
        std::vector<std::size_t> lengths;
        for (std::uint64_t i = 0; i < frames;) {
            switch ((i / FRAMES_CHUNK) % 3) {
                case 0: {
                    std::array<std::byte, FRAMES_MAX> frame{};
                    frame_fill(i, reinterpret_cast<unsigned char*>(frame.data()));
                    if (writer.write({frame.data(), frame_len(i)}, frame_flags(i), patience) != Status::Ok) {
                        return 1;
                    }
                    i++;
                    break;
                }
                case 1: {
                    shmline::WriteSlot slot = writer.reserve(patience);
                    if (!slot) {
                        return 1;
                    }
                    frame_fill(i, reinterpret_cast<unsigned char*>(slot.data()));
                    slot.set_length(frame_len(i));
                    slot.set_flags(frame_flags(i));
                    i++;
                    break;
                }
                default: {
                    lengths.clear();
                    std::size_t offset = 0;
                    for (std::uint64_t k = i; lengths.size() < FRAMES_BATCH && k < frames &&
                                              k / FRAMES_CHUNK == i / FRAMES_CHUNK;
                         k++) {
                        frame_fill(k, reinterpret_cast<unsigned char*>(batch.data() + offset));
                        lengths.push_back(frame_len(k));
                        offset += frame_len(k);
                    }
                    std::size_t written = 0;
                    if (writer.write_batch({batch.data(), offset}, lengths, written, frame_flags(i),
                                           patience) != Status::Ok) {
                        return 1;
                    }
                    i += written;
                    break;
                }
            }
        }
        return 0;  // the writer's destructor ends the stream
    } catch (const std::exception& e) {
        std::fprintf(stderr, "child writer: %s\n", e.what());
        return 1;
    }
}

TEST(Processes, EveryFrameFromAChildProcessWriterReachesTheParentReaderIntact) {
    constexpr std::uint64_t frames = 3000;
    shmline::StreamOptions options;
    options.capacity = 8;
    options.max_frame_size = FRAMES_MAX;
    options.unlink_on_close = true;
    const std::string name = unique_name("processes");
    shmline::Stream stream = shmline::Stream::create(name, options);
    shmline::Reader reader = stream.reader();  // before the child exists: it misses nothing

    std::fflush(nullptr);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child leaves the parent's inherited handles alone and skips every destructor.
        _exit(write_frames_in_child(name, frames));
    }

    std::vector<std::byte> buffer(FRAMES_BATCH * FRAMES_MAX);
    std::array<shmline::FrameInfo, FRAMES_BATCH> infos{};
    std::uint64_t i = 0;
    Status status = Status::Ok;
    auto check = [&](const shmline::FrameInfo& info, const std::byte* data) {
        EXPECT_EQ(info.seq, i);
        EXPECT_TRUE(frame_ok(i, reinterpret_cast<const unsigned char*>(data), info.len, info.flags))
            << "frame " << i;
        i++;
    };
    while (status == Status::Ok && i < frames && !testing::Test::HasFailure()) {
        switch ((i / FRAMES_CHUNK) % 3) {
            case 0:
                status = reader.read(buffer, infos[0], patience);
                if (status == Status::Ok) {
                    check(infos[0], buffer.data());
                }
                break;
            case 1: {
                shmline::ReadSlot frame = reader.acquire(patience);
                status = frame.status();
                if (frame) {
                    check(frame.info(), frame.data());
                }
                break;
            }
            default: {
                std::size_t count = 0;
                status = reader.read_batch(buffer, infos, count, patience);
                std::size_t offset = 0;
                for (std::size_t k = 0; k < count; k++) {
                    check(infos[k], buffer.data() + offset);
                    offset += infos[k].len;
                }
                break;
            }
        }
    }
    EXPECT_EQ(status, Status::Ok);
    EXPECT_EQ(i, frames);
    if (status == Status::Ok) {
        EXPECT_EQ(reader.read(buffer, infos[0], patience), Status::EndOfStream);
    }
    reader.close();  // a failed parent must not hold the child back

    int wstatus = 0;
    ASSERT_EQ(waitpid(child, &wstatus, 0), child);
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "wait status " << wstatus;
}


// ---------------------------------------------------------------------------------------------
// WaitSet (issue 12)
// ---------------------------------------------------------------------------------------------

static_assert(!std::is_copy_constructible_v<shmline::WaitSet>);
static_assert(std::is_nothrow_move_constructible_v<shmline::WaitSet>);

shmline::Event waitset_event(const char* what, shmline::EventMode mode) {
    shmline::EventOptions options;
    options.mode = mode;
    options.unlink_on_close = true;
    return shmline::Event::create(unique_name(what), options);
}

TEST(WaitSet, ReportsTheReadersWithFramesAndTheSetEventsUntilReadOrCleared) {
    shmline::Stream a = small_stream("ws-a"), b = small_stream("ws-b");
    shmline::Reader ra = a.reader(), rb = b.reader();
    shmline::Writer wb = b.writer();
    shmline::Event event = waitset_event("ws-ev", shmline::EventMode::Flag);
    shmline::WaitSet set;
    const std::size_t ka = set.add(ra), kb = set.add(rb), ke = set.add(event);
    EXPECT_EQ(ka, 0u);
    EXPECT_EQ(thrown([&] { set.add(ra); }), Status::InvalidArgument);
    EXPECT_TRUE(set.wait(0ms).empty());
    const auto frame = bytes("x");
    EXPECT_EQ(wb.write(frame, 0, patience), Status::Ok);
    EXPECT_EQ(set.wait(patience), (std::vector<std::size_t>{kb}));
    event.set();
    EXPECT_EQ(set.wait(patience), (std::vector<std::size_t>{kb, ke}));
    std::array<std::byte, 64> buffer{};
    shmline::FrameInfo info{};
    EXPECT_EQ(rb.try_read(buffer, info), Status::Ok);
    event.clear();
    EXPECT_TRUE(set.wait(0ms).empty());
    set.remove(kb);
    EXPECT_EQ(thrown([&] { set.remove(kb); }), Status::InvalidArgument);
}

TEST(WaitSet, TimesOutWithAnEmptyListAfterItsTimeout) {
    shmline::Stream s = small_stream("ws-timeout");
    shmline::Reader r = s.reader();
    shmline::Writer w = s.writer();
    shmline::WaitSet set;
    set.add(r);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(set.wait(100ms).empty());
    EXPECT_GE(std::chrono::steady_clock::now() - started, 100ms);
    shmline::WaitSet empty;
    EXPECT_EQ(thrown([&] { (void)empty.wait(0ms); }), Status::InvalidArgument);
}

TEST(WaitSet, FansInTwoWriterProcessesOf10And200Frames) {
    shmline::Stream s[2] = {small_stream("ws-fan0"), small_stream("ws-fan1")};
    shmline::Reader r[2] = {s[0].reader(), s[1].reader()};
    const std::uint64_t frames[2] = {10, 200};
    pid_t child[2];
    std::fflush(nullptr);
    for (int i = 0; i < 2; i++) {
        child[i] = fork();
        ASSERT_GE(child[i], 0);
        if (child[i] == 0) {
            int failed = 0;
            try {
                shmline::Writer w = shmline::Stream::open(s[i].name()).writer();
                for (std::uint64_t n = 0; n < frames[i] && !failed; n++) {
                    failed = w.write({reinterpret_cast<const std::byte*>(&n), sizeof n}, 0,
                                     patience) != Status::Ok;
                }
            } catch (...) {
                failed = 1;
            }
            _exit(failed);
        }
    }
    shmline::WaitSet set;
    ASSERT_EQ(set.add(r[0]), 0u);
    ASSERT_EQ(set.add(r[1]), 1u);
    std::uint64_t next[2] = {0, 0};
    int open = 2;
    while (open > 0 && !testing::Test::HasFailure()) {
        const std::vector<std::size_t> ready = set.wait(patience);
        ASSERT_FALSE(ready.empty());
        for (std::size_t key : ready) {
            std::uint64_t value = 0;
            shmline::FrameInfo info{};
            const Status status =
                r[key].try_read({reinterpret_cast<std::byte*>(&value), sizeof value}, info);
            if (status == Status::EndOfStream) {
                set.remove(key);
                open--;
            } else {
                ASSERT_EQ(status, Status::Ok);
                EXPECT_EQ(value, next[key]);
                next[key]++;
            }
        }
    }
    EXPECT_EQ(next[0], 10u);
    EXPECT_EQ(next[1], 200u);
    for (pid_t pid : child) {
        int wstatus = 0;
        ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
        EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    }
}

TEST(WaitSet, AnIdleWaitUsesUnderOnePercentOfACore) {
    shmline::Stream s = small_stream("ws-idle");
    shmline::Reader r = s.reader();
    shmline::Writer w = s.writer();
    shmline::Event event = waitset_event("ws-idle-ev", shmline::EventMode::Counting);
    shmline::WaitSet set;
    set.add(r);
    set.add(event);
    timespec c0{}, c1{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(set.wait(1s).empty());
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - started;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    const double cpu = double(c1.tv_sec - c0.tv_sec) + double(c1.tv_nsec - c0.tv_nsec) / 1e9;
    // Valgrind emulates every instruction (and lacks futex_waitv, so the set wakes every 5 ms):
    // its CPU time says nothing about ours.
    const char* preload = std::getenv("LD_PRELOAD");
    if (preload == nullptr || std::strstr(preload, "vgpreload") == nullptr) {
        EXPECT_LT(cpu, 0.01 * wall.count()) << cpu << " s of CPU over " << wall.count() << " s";
    }
}

// ---------------------------------------------------------------------------------------------
// Pipelines declared in C++, with C++ tasks

TEST(Task, JoiningOutsideAPipelineThrowsInvalidArgumentNamingTheCppCall) {
    try {
        static_cast<void>(shmline::Task::join());
        ADD_FAILURE() << "joined without a pipeline";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::InvalidArgument);
        EXPECT_NE(std::string(e.message()).find("SHMLINE_PIPELINE"), std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.message()).find("shmline::Task::join"), std::string::npos)
            << e.what();
    }
}

TEST(Task, JoiningAPipelineThatIsNotRunningThrowsNotFound) {
    EXPECT_EQ(thrown([] { shmline::Task::join(unique_name("absent"), "task"); }),
              Status::NotFound);
}

TEST(Task, AnEmptyTaskIsFalseAndItsCallsThrowNullPointer) {
    shmline::Task task;
    EXPECT_FALSE(task);
    EXPECT_EQ(task.name(), "");
    EXPECT_EQ(thrown([&] { task.reader("input"); }), Status::NullPointer);
    EXPECT_EQ(thrown([&] { task.writer("out"); }), Status::NullPointer);
    EXPECT_EQ(thrown([&] { task.event("go"); }), Status::NullPointer);
    EXPECT_EQ(thrown([&] { static_cast<void>(task.stop_requested()); }), Status::NullPointer);
    task.close();  // idempotent
}

TEST(Pipeline, DeclaringCallsCheckTheirArgumentsAndValidateListsEveryProblem) {
    const std::string name = unique_name("declare");
    shmline::Pipeline pipeline(name);
    EXPECT_TRUE(pipeline);
    EXPECT_EQ(pipeline.name(), name);
    EXPECT_EQ(thrown([&] { pipeline.add_task("empty", {}); }), Status::InvalidArgument);
    EXPECT_EQ(thrown([&] { pipeline.bind("nobody", shmline::Binding::Read, "input", "s"); }),
              Status::NotFound);
    shmline::StreamOptions shared = pipeline_stream();
    shared.permissions = 0644;
    EXPECT_EQ(thrown([&] { pipeline.add_stream("s", shared); }), Status::InvalidArgument);

    pipeline.add_stream("samples", pipeline_stream())
        .add_task("sink", {"./sink"})
        .bind("sink", shmline::Binding::Read, "input", "sampels");
    try {
        pipeline.validate();
        ADD_FAILURE() << "an invalid declaration validated";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::InvalidArgument);
        const std::string message = e.message();
        EXPECT_NE(message.find("tasks.sink.reads.input"), std::string::npos) << message;
        EXPECT_NE(message.find("samples"), std::string::npos) << message;  // written by nobody
    }
    EXPECT_EQ(thrown([&] { static_cast<void>(pipeline.start()); }), Status::InvalidArgument);

    shmline::Pipeline moved = std::move(pipeline);
    EXPECT_FALSE(pipeline);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(pipeline.name(), "");
    EXPECT_EQ(thrown([&] { pipeline.validate(); }), Status::NullPointer);
    EXPECT_EQ(moved.name(), name);
}

TEST(Pipeline, ASavedDeclarationLoadsBackAndMalformedTextNamesItsLine) {
    const std::string name = unique_name("save");
    shmline::Pipeline pipeline(name);
    pipeline.add_stream("samples", pipeline_stream())
        .add_event("go", shmline::EventMode::Counting)
        .add_task("source", {"./source", "--fast"})
        .add_task("sink", {"./sink"})
        .task_set_env("source", "FRAMES", "10")
        .task_set_output("sink", "/dev/null")
        .bind("source", shmline::Binding::Write, "out", "samples")
        .bind("source", shmline::Binding::Event, "go", "go")
        .bind_group("sink", "input", "samples", "workers")
        .set_join_timeout(5s)
        .set_stop_grace(1s);
    const std::string path = "/tmp/" + name + ".toml";
    pipeline.save(path);
    shmline::Pipeline loaded = shmline::Pipeline::load(path);
    std::remove(path.c_str());
    EXPECT_EQ(loaded.name(), name);
    loaded.validate();

    try {
        shmline::Pipeline::parse("[pipeline]\nname = \"x\"\n[streams.s]\ncapacity = \"many\"\n");
        ADD_FAILURE() << "malformed text parsed";
    } catch (const shmline::Error& e) {
        EXPECT_EQ(e.status(), Status::InvalidArgument);
        EXPECT_NE(std::string(e.message()).find("line"), std::string::npos) << e.what();
    }
    EXPECT_EQ(thrown([&] { shmline::Pipeline::load("/tmp/" + name + "-absent.toml"); }),
              Status::NotFound);
}

TEST(Pipeline, CppTasksPassEveryFrameFromSourceThroughScaleToSink) {
    constexpr std::uint64_t frames = 2000;
    const std::string name = unique_name("chain");
    shmline::Pipeline pipeline(name);
    pipeline.add_stream("raw", pipeline_stream(8)).add_stream("scaled", pipeline_stream(8));
    add_role(pipeline, "source", "source").task_set_env("source", "FRAMES", "2000");
    add_role(pipeline, "scale", "scale");
    add_role(pipeline, "sink", "sink").task_set_env("sink", "FRAMES", "2000");
    pipeline.task_set_env("sink", "SCALED", "1")
        .bind("source", shmline::Binding::Write, "out", "raw")
        .bind("scale", shmline::Binding::Read, "input", "raw")
        .bind("scale", shmline::Binding::Write, "out", "scaled")
        .bind("sink", shmline::Binding::Read, "input", "scaled");

    const shmline::RunReport report = pipeline.run();  // throws PipelineFailed on a failure
    EXPECT_EQ(report.outcome, shmline::RunOutcome::Finished);
    EXPECT_EQ(report.task_count, 3u);
    EXPECT_EQ(report.stream_count, 2u);
    EXPECT_EQ(report.frames, 2 * frames);
    EXPECT_EQ(report.bytes, 2 * frames * PIPELINE_FRAME);
    EXPECT_GE(report.duration, report.running);
    EXPECT_TRUE(report.tasks.empty());
    const std::vector<std::string> streams = shmline::Stream::list();
    EXPECT_TRUE(std::none_of(streams.begin(), streams.end(),
                             [&](const std::string& s) { return s.rfind(name, 0) == 0; }))
        << "a stream of the pipeline is left";
}

TEST(Run, StartedTasksAreWaitedForAndEachReportsItsExit) {
    const std::string name = unique_name("run");
    shmline::Pipeline pipeline(name);
    pipeline.add_stream("samples", pipeline_stream());
    add_role(pipeline, "source", "source").task_set_env("source", "FRAMES", "300");
    add_role(pipeline, "sink", "sink").task_set_env("sink", "FRAMES", "300");
    pipeline.task_set_env("sink", "SCALED", "0");  // no scale stage in between
    pipeline.bind("source", shmline::Binding::Write, "out", "samples")
        .bind("sink", shmline::Binding::Read, "input", "samples");

    shmline::Run run = pipeline.start();
    pipeline.close();  // the run has its own copy
    EXPECT_EQ(run.stream_names(), std::vector<std::string>{"samples"});
    ASSERT_TRUE(run.wait(patience));
    EXPECT_TRUE(run.wait(0s));  // once ended, the same every time
    const shmline::RunReport report = run.report();
    EXPECT_EQ(report.outcome, shmline::RunOutcome::Finished);
    EXPECT_EQ(report.frames, 300u);
    const shmline::StreamStats samples = run.stream_stats(0);  // the final counts
    EXPECT_EQ(samples.frames_written, 300u);
    EXPECT_EQ(samples.bytes_written, 300u * PIPELINE_FRAME);
    EXPECT_EQ(samples.writer_state, shmline::WriterState::Closed);
    EXPECT_EQ(thrown([&] { run.stream_stats(1); }), Status::InvalidArgument);
    ASSERT_EQ(report.tasks.size(), 2u);
    for (const shmline::TaskReport& task : report.tasks) {
        EXPECT_NE(task.pid, 0u);
        EXPECT_EQ(task.exit, shmline::TaskExit::Code);
        EXPECT_EQ(task.exit_value, 0);
        EXPECT_FALSE(task.stopped);
    }
}

TEST(Run, AFailingTaskThrowsPipelineFailedNamingItWithEveryTasksReport) {
    const std::string name = unique_name("fail");
    shmline::Pipeline pipeline(name);
    pipeline.add_stream("samples", pipeline_stream());
    add_role(pipeline, "source", "fail");
    add_role(pipeline, "sink", "sink").task_set_output("sink", "/dev/null", "/dev/null");
    pipeline.bind("source", shmline::Binding::Write, "out", "samples")
        .bind("sink", shmline::Binding::Read, "input", "samples");

    shmline::Run run = pipeline.start();
    try {
        (void)run.wait(patience);
        ADD_FAILURE() << "the failed run ended normally";
    } catch (const shmline::PipelineFailed& e) {
        EXPECT_EQ(e.status(), Status::PipelineFailed);
        EXPECT_NE(std::string(e.message()).find("source"), std::string::npos) << e.what();
        const shmline::RunReport& report = e.report();
        EXPECT_EQ(report.outcome, shmline::RunOutcome::Failed);
        ASSERT_EQ(report.tasks.size(), 2u);
        EXPECT_EQ(report.tasks[0].exit, shmline::TaskExit::Code);
        EXPECT_EQ(report.tasks[0].exit_value, 3);
        EXPECT_FALSE(report.tasks[0].stopped);
    }
    // The report stays readable, without throwing.
    EXPECT_EQ(run.report().outcome, shmline::RunOutcome::Failed);
    EXPECT_THROW(pipeline.run(), shmline::PipelineFailed);  // run() throws the same way
}

TEST(Run, StopAsksEveryTaskToStopAndTheRunEndsStopped) {
    const std::string name = unique_name("stop");
    shmline::Pipeline pipeline(name);
    pipeline.add_event("ready");
    add_role(pipeline, "idle", "idle").bind("idle", shmline::Binding::Event, "ready", "ready");

    shmline::Run run = pipeline.start();
    EXPECT_FALSE(run.wait(0s));
    EXPECT_EQ(thrown([&] { run.report(); }), Status::WrongState);
    // The task has joined once it sets `ready`: then it waits for the stop.
    ASSERT_TRUE(shmline::Event::open(name + ".ready").wait(patience));
    run.stop();
    ASSERT_TRUE(run.wait(patience));
    const shmline::RunReport report = run.report();
    EXPECT_EQ(report.outcome, shmline::RunOutcome::Stopped);
    EXPECT_EQ(report.signal, 0);
    ASSERT_EQ(report.tasks.size(), 1u);
    EXPECT_TRUE(report.tasks[0].stopped);
    EXPECT_EQ(report.tasks[0].exit, shmline::TaskExit::Code);  // it saw the stop and returned
    EXPECT_EQ(report.tasks[0].exit_value, 0);
    run.close();
    EXPECT_FALSE(run);
}

// Two sources of `a_frames` and `b_frames` frames feeding the merge role.
shmline::Pipeline merge_pipeline(const std::string& name, const char* a_frames,
                                 const char* b_frames) {
    shmline::Pipeline pipeline(name);
    pipeline.add_stream("a", pipeline_stream(8)).add_stream("b", pipeline_stream(8));
    add_role(pipeline, "source_a", "source").task_set_env("source_a", "FRAMES", a_frames);
    add_role(pipeline, "source_b", "source").task_set_env("source_b", "FRAMES", b_frames);
    add_role(pipeline, "merge", "merge");
    pipeline.bind("source_a", shmline::Binding::Write, "out", "a")
        .bind("source_b", shmline::Binding::Write, "out", "b")
        .bind("merge", shmline::Binding::Read, "a", "a")
        .bind("merge", shmline::Binding::Read, "b", "b");
    return pipeline;
}

TEST(Task, CheckInputsLetsATaskEndWhenEveryInputEndedTogether) {
    const shmline::RunReport report = merge_pipeline(unique_name("zip"), "50", "50").run();
    EXPECT_EQ(report.outcome, shmline::RunOutcome::Finished);
    EXPECT_EQ(report.frames, 100u);
}

TEST(Task, CheckInputsFailsATaskThatEndedWhileAnotherInputStillHadFrames) {
    try {
        merge_pipeline(unique_name("unzip"), "10", "200").run();
        ADD_FAILURE() << "the merge ended normally with frames of b unread";
    } catch (const shmline::PipelineFailed& e) {
        const std::string message = e.message();
        EXPECT_NE(message.find("merge"), std::string::npos) << message;
        EXPECT_NE(message.find("still had"), std::string::npos) << message;
        EXPECT_EQ(e.report().outcome, shmline::RunOutcome::Failed);
    }
}

}  // namespace
