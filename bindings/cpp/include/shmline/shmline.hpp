// shmline for C++: a header-only RAII layer over the C API in <shmline.h>.
//
// Requires C++17; under C++20 the byte views are std::span. Link with the shmline library
// (CMake: `target_link_libraries(app PRIVATE shmline::cpp)`).
//
// The rules every class below follows:
//
// - Handles. Stream, Writer, Reader and Event own one C handle each. They are move-only; the
//   destructor closes the handle (closing a Writer ends the stream for its readers; of a
//   multi-writer stream, closing its last Writer does). A
//   moved-from or closed object is empty (`operator bool` is false) and every call on it fails
//   with Status::NullPointer.
// - Errors. Setup calls (create, open, writer, reader...) and every call not named `try_*` throw
//   shmline::Error, which carries the Status and the library's message, for every error (negative
//   status). Outcomes that are not errors (Full, Empty, Timeout, EndOfStream, WriterDead) are
//   returned, never thrown, and every call returning a Status or a bool outcome is [[nodiscard]]:
//   a frame that did not go in (Full on a Fail stream, Timeout) cannot be ignored silently.
// - Hot path. Calls named `try_*` never block and never throw: they return the Status, errors
//   included; shmline::last_error_message() then says what went wrong.
// - Blocking. Blocking calls take a Timeout (any std::chrono duration converts to it):
//   shmline::forever (the default) waits without limit, zero never blocks, a positive duration
//   waits at most that long and then returns Status::Timeout.
// - Threads. As in C: a Stream or an Event may be used by any number of threads at once; a
//   Writer or a Reader by one thread at a time. Every handle works across processes.
//
// Zero-copy slots. Writer::reserve() returns a WriteSlot that publishes its frame when it goes out
// of scope normally: its length is the whole slot (exactly one frame of a stream with a schema)
// unless set_length() declared another. Leaving the scope by an exception drops the slot
// unpublished, so a half-filled frame never reaches the readers; commit() and abort() decide
// explicitly. Reader::acquire() returns a ReadSlot that releases its frame when it goes out of
// scope. A slot must not outlive the Writer or Reader it came from.

#ifndef SHMLINE_SHMLINE_HPP
#define SHMLINE_SHMLINE_HPP

#if __cplusplus < 201703L
#error "<shmline/shmline.hpp> needs C++17 or later (CMake: link shmline::cpp, which requires it)"
#endif

#include <shmline.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<version>)
#include <version>
#endif
// Defined when shmline::Span is std::span (C++20 libraries); otherwise it is shmline's own.
#if defined(__cpp_lib_span) && __cpp_lib_span >= 202002L
#include <span>
#define SHMLINE_HAS_STD_SPAN 1
#endif

namespace shmline {

// ---------------------------------------------------------------------------------------------
// Status and errors
// ---------------------------------------------------------------------------------------------

/// The outcome of a call: the C API's status codes, with the same numbers (which never change).
/// Zero is success, positive values are outcomes that are not errors, negative values are errors.
enum class Status : std::int32_t {
    Ok = SHMLINE_OK,                              ///< Success.
    Full = SHMLINE_FULL,                          ///< The ring is full (nothing written).
    Empty = SHMLINE_EMPTY,                        ///< No frame now, or the event is not set.
    Timeout = SHMLINE_TIMEOUT,                    ///< A blocking call reached its timeout.
    EndOfStream = SHMLINE_END_OF_STREAM,          ///< The writer closed; every frame was read.
    WriterDead = SHMLINE_WRITER_DEAD,             ///< The writer died; every frame was read.
    InvalidArgument = SHMLINE_INVALID_ARGUMENT,   ///< An argument is out of range.
    NullPointer = SHMLINE_NULL_POINTER,           ///< A handle is closed or moved from.
    InvalidName = SHMLINE_INVALID_NAME,           ///< A stream or event name is not allowed.
    NotFound = SHMLINE_NOT_FOUND,                 ///< No stream or event has that name.
    AlreadyExists = SHMLINE_ALREADY_EXISTS,       ///< The name is taken.
    PermissionDenied = SHMLINE_PERMISSION_DENIED, ///< The system refused access to the segment.
    NotShmline = SHMLINE_NOT_SHMLINE,             ///< The segment is not a shmline segment.
    VersionMismatch = SHMLINE_VERSION_MISMATCH,   ///< The segment has another layout version.
    Corrupt = SHMLINE_CORRUPT,                    ///< Shared memory holds an impossible value.
    SchemaMismatch = SHMLINE_SCHEMA_MISMATCH,     ///< The stream's schema is not the required one.
    WriterExists = SHMLINE_WRITER_EXISTS,         ///< The single-writer stream has (had) a writer.
    TooManyReaders = SHMLINE_TOO_MANY_READERS,    ///< Every reader slot is taken.
    TooManyWriters = SHMLINE_TOO_MANY_WRITERS,    ///< Every writer slot is taken by a live writer.
    FrameTooLarge = SHMLINE_FRAME_TOO_LARGE,      ///< A frame exceeds the maximum frame size.
    BufferTooSmall = SHMLINE_BUFFER_TOO_SMALL,    ///< The buffer cannot hold the frame.
    WrongState = SHMLINE_WRONG_STATE,             ///< The call is not allowed in this state.
    NoSpace = SHMLINE_NO_SPACE,                   ///< Not enough shared memory.
    OsError = SHMLINE_OS_ERROR,                   ///< Another operating-system error.
    Panic = SHMLINE_PANIC,                        ///< A bug inside shmline (please report it).
    Unsupported = SHMLINE_UNSUPPORTED,            ///< Not supported for this handle.
    PipelineFailed = SHMLINE_PIPELINE_FAILED,     ///< A task of the pipeline failed.
};

/// The status's name as in the C macro without `SHMLINE_` (`"END_OF_STREAM"`); `"UNKNOWN"` for a
/// number that is not a status. The string is static.
inline const char* status_name(Status status) noexcept {
    return shmline_status_str(static_cast<std::int32_t>(status));
}

/// One sentence saying what the status means in general (`"the ring is full"`). The string is
/// static. For what went wrong in a particular call, see Error::message() or last_error_message().
inline const char* status_description(Status status) noexcept {
    return shmline_status_describe(static_cast<std::int32_t>(status));
}

/// True for the negative statuses, the errors; false for Ok and the outcomes (Full, Empty,
/// Timeout, EndOfStream, WriterDead).
[[nodiscard]] constexpr bool is_error(Status status) noexcept {
    return static_cast<std::int32_t>(status) < 0;
}

/// The message of the last failed shmline call on this thread, saying what went wrong and
/// usually how to fix it (empty before any failure). Meant for statuses returned by `try_*`
/// calls; thrown errors carry their own copy in Error::message().
inline std::string last_error_message() {
    return shmline_last_error_message();
}

/// The error thrown by every shmline call not named `try_*`: a negative Status and the library's
/// message. `what()` is `"<STATUS_NAME>: <message>"`.
///
/// Catch it and branch on status() to handle one kind, e.g. Status::NotFound from Stream::open()
/// while the producer has not created the stream yet. Copying it never throws.
class Error : public std::runtime_error {
  public:
    /// An error with `status` (expected to be negative) and `message` (what went wrong).
    Error(Status status, const std::string& message)
        : std::runtime_error(std::string(status_name(status)) + ": " + message),
          status_(status),
          prefix_(std::strlen(status_name(status)) + 2) {}

    /// The status of the failed call, e.g. Status::NotFound.
    [[nodiscard]] Status status() const noexcept { return status_; }

    /// The library's message alone, without the status name that what() starts with.
    const char* message() const noexcept { return what() + prefix_; }

  private:
    Status status_;
    std::size_t prefix_;
};

namespace detail {

/// The C library's message `message` with the C functions it names as a way out (e.g. of a
/// stale name, in a Status::AlreadyExists message) replaced by the C++ calls that wrap them.
inline std::string in_cpp_terms(std::string message) {
    static constexpr const char* calls[][2] = {
        {"shmline_stream_remove_stale", "shmline::Stream::remove_stale"},
        {"shmline_event_remove_stale", "shmline::Event::remove_stale"},
        {"shmline_task_join", "shmline::Task::join"},
        {"shmline_pipeline_run", "shmline::Pipeline::run"},
        {"shmline_pipeline_add_task", "shmline::Pipeline::add_task"},
        {"shmline_run_wait", "shmline::Run::wait"},
    };
    for (const auto& call : calls) {
        const std::string c_call = call[0];
        for (std::size_t at = message.find(c_call); at != std::string::npos;
             at = message.find(c_call, at + std::strlen(call[1]))) {
            message.replace(at, c_call.size(), call[1]);
        }
    }
    return message;
}

/// Throws the Error for a failed C call, with the message it just recorded on this thread
/// (naming C++ calls where it names C functions).
[[noreturn]] inline void raise(std::int32_t status) {
    throw Error(static_cast<Status>(status), in_cpp_terms(shmline_last_error_message()));
}

/// Converts a C status for a throwing call: errors are thrown, outcomes returned.
inline Status check(std::int32_t status) {
    if (status < 0) {
        raise(status);
    }
    return static_cast<Status>(status);
}

}  // namespace detail

/// The version of the shmline library actually loaded, `"MAJOR.MINOR.PATCH"` (compare with the
/// `SHMLINE_VERSION_*` macros of the header compiled against). The string is static.
inline const char* version() noexcept {
    return shmline_version();
}

/// The shared-memory layout version of the library actually loaded (compare with
/// `SHMLINE_LAYOUT_VERSION`). Processes share streams and events only with the same one.
inline std::uint32_t layout_version() noexcept {
    return shmline_layout_version();
}

// ---------------------------------------------------------------------------------------------
// Timeouts and byte views
// ---------------------------------------------------------------------------------------------

/// How long a blocking call may wait. Any std::chrono duration that converts to nanoseconds
/// without loss converts to it (`std::chrono::milliseconds(5)`, `2s`...). Negative waits for ever
/// (see shmline::forever); zero never blocks.
using Timeout = std::chrono::nanoseconds;

/// A Timeout that waits without limit: the default of every blocking call.
inline constexpr Timeout forever{SHMLINE_TIMEOUT_INFINITE};

namespace detail {

/// The C API's `timeout_ns` for a Timeout (every negative value means for ever in both).
inline std::int64_t nanos(Timeout timeout) noexcept {
    return static_cast<std::int64_t>(timeout.count());
}

}  // namespace detail

#if defined(SHMLINE_HAS_STD_SPAN)
/// A view of contiguous elements: std::span under C++20.
template <class T>
using Span = std::span<T>;
#else
/// A view of contiguous elements for C++17: the part of C++20's std::span that shmline uses
/// (built from a pointer and a size or from any contiguous container, never owning), so that code
/// written against it compiles unchanged under C++20, where Span is std::span.
template <class T>
class Span {
    template <class C>
    using data_of = decltype(std::data(std::declval<C&>()));

    // A container fits if it has data() and size() and its elements convert like T's (const
    // may be added, nothing else), as std::span requires.
    template <class C, class = void>
    struct fits : std::false_type {};
    template <class C>
    struct fits<C, std::void_t<data_of<C>, decltype(std::size(std::declval<C&>()))>>
        : std::is_convertible<std::remove_pointer_t<data_of<C>> (*)[], T (*)[]> {};

  public:
    using element_type = T;                         ///< The element type, with its const.
    using value_type = std::remove_cv_t<T>;         ///< The element type without const.
    using size_type = std::size_t;                  ///< The type of sizes.
    using pointer = T*;                             ///< A pointer to an element.
    using reference = T&;                           ///< A reference to an element.
    using iterator = T*;                            ///< Iterators are plain pointers.

    /// An empty view.
    constexpr Span() noexcept = default;

    /// A view of the `size` elements at `data`.
    constexpr Span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}

    /// A view of a contiguous container or array (std::vector, std::array, T[N], another Span...).
    template <class C, std::enable_if_t<!std::is_same_v<std::remove_cv_t<C>, Span> && fits<C>::value,
                                        int> = 0>
    constexpr Span(C& container) noexcept  // NOLINT(google-explicit-constructor): as std::span
        : data_(std::data(container)), size_(std::size(container)) {}

    /// A read-only view of a const or temporary container (only for a Span of const elements).
    template <class C, std::enable_if_t<std::is_const_v<T> && !std::is_same_v<C, Span> &&
                                            fits<const C>::value,
                                        int> = 0>
    constexpr Span(const C& container) noexcept  // NOLINT(google-explicit-constructor)
        : data_(std::data(container)), size_(std::size(container)) {}

    /// The first element (may be null when empty).
    constexpr T* data() const noexcept { return data_; }
    /// The number of elements.
    constexpr std::size_t size() const noexcept { return size_; }
    /// The number of bytes the elements occupy.
    constexpr std::size_t size_bytes() const noexcept { return size_ * sizeof(T); }
    /// Whether the view has no element.
    [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
    /// Element `i` (unchecked, as std::span).
    constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
    /// Iterator to the first element.
    constexpr T* begin() const noexcept { return data_; }
    /// Iterator past the last element.
    constexpr T* end() const noexcept { return data_ + size_; }

  private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};
#endif

/// Read-only bytes: what writers take. Built from std::vector<std::byte>, std::array<std::byte, N>
/// and the like; for other data use the (pointer, size) overloads.
using ConstBytes = Span<const std::byte>;

/// Writable bytes: the buffers readers fill.
using MutableBytes = Span<std::byte>;

// ---------------------------------------------------------------------------------------------
// Plain data: options, schemas, frame metadata, statistics
// ---------------------------------------------------------------------------------------------

/// How a blocked writer or reader waits (the C `SHMLINE_WAIT_*` values).
enum class WaitStrategy : std::uint32_t {
    Adaptive = SHMLINE_WAIT_ADAPTIVE,  ///< Spin a few microseconds, then sleep (the default).
    BusySpin = SHMLINE_WAIT_BUSY_SPIN, ///< Never sleep: lowest latency, burns a core.
    Block = SHMLINE_WAIT_BLOCK,        ///< Sleep at once: least CPU, adds wake-up latency.
};

/// Where a new reader starts (the C `SHMLINE_START_*` values).
enum class StartPosition : std::uint32_t {
    Next = SHMLINE_START_NEXT,     ///< Frames published after the reader opened (the default).
    Newest = SHMLINE_START_NEWEST, ///< The most recent frame, then everything after it.
    Oldest = SHMLINE_START_OLDEST, ///< The oldest frame still in the ring, then the rest.
};

/// What the writer of a stream is doing (the C `SHMLINE_WRITER_STATE_*` values).
enum class WriterState : std::uint32_t {
    None = SHMLINE_WRITER_STATE_NONE,     ///< No writer has opened the stream yet.
    Active = SHMLINE_WRITER_STATE_ACTIVE, ///< A live writer is attached.
    Closed = SHMLINE_WRITER_STATE_CLOSED, ///< The writer closed the stream (end of stream).
    Dead = SHMLINE_WRITER_STATE_DEAD,     ///< The writer's process died without closing.
};

/// What writers do when the ring is full (the C `SHMLINE_BACKPRESSURE_*` values).
enum class Backpressure : std::uint32_t {
    Block = SHMLINE_BACKPRESSURE_BLOCK,             ///< Wait for space; nothing lost (the default).
    Fail = SHMLINE_BACKPRESSURE_FAIL,               ///< Return Status::Full at once.
    DropNewest = SHMLINE_BACKPRESSURE_DROP_NEWEST,  ///< Discard the frame being written.
    DropOldest = SHMLINE_BACKPRESSURE_DROP_OLDEST,  ///< Overwrite the oldest; readers are lossy.
};

/// How an event counts (the C `SHMLINE_EVENT_*` values).
enum class EventMode : std::uint32_t {
    Flag = SHMLINE_EVENT_FLAG,         ///< A switch: on until cleared; one set releases all waits.
    Counting = SHMLINE_EVENT_COUNTING, ///< A semaphore: each set releases exactly one wait.
};

/// The type of a stream's frames: a NumPy array-interface dtype (`"<f4"`, `"|u1"`...) and a
/// shape (empty: one scalar per frame). The empty Schema (no dtype) stands for raw bytes without
/// a schema, as a NULL dtype does in C.
///
/// (Not a std::optional in the options: GCC 12 at -O2 reports a disengaged std::optional of a
/// class type as "may be used uninitialized", GCC bug 80635, which would break users' -Werror
/// builds.)
struct Schema {
    std::string dtype;                ///< Element type, e.g. `"<f4"`; empty: no schema.
    std::vector<std::uint64_t> shape; ///< Dimensions, none of them 0; at most SHMLINE_MAX_NDIM.

    /// Whether this is no schema at all (raw bytes): the dtype is empty.
    [[nodiscard]] bool empty() const noexcept { return dtype.empty(); }

    /// Same dtype and shape.
    friend bool operator==(const Schema& a, const Schema& b) {
        return a.dtype == b.dtype && a.shape == b.shape;
    }
    /// Different dtype or shape.
    friend bool operator!=(const Schema& a, const Schema& b) { return !(a == b); }
};

/// Parameters of a new stream, for Stream::create(). The defaults are the C library's
/// (shmline_stream_options_default()); the C header documents each field's range.
struct StreamOptions {
    /// Slots in the ring, a power of two (default 64): how far the writer may run ahead.
    std::uint32_t capacity = shmline_stream_options_default().capacity;
    /// Largest frame in bytes; 0 (the default) takes the schema's frame size.
    std::uint32_t max_frame_size = shmline_stream_options_default().max_frame_size;
    /// Most readers attached at once (default 8).
    std::uint32_t max_readers = shmline_stream_options_default().max_readers;
    /// Most writers attached at once, 1 to 64 (default 1: a single-writer stream, which has one
    /// writer for its whole life). With more, up to that many writers in any processes write
    /// concurrently; frames are published in the order writers claimed them, every reader sees
    /// each frame once, and the stream ends when every writer that opened has closed.
    std::uint32_t max_writers = shmline_stream_options_default().max_writers;
    /// Most reader groups at once, 0 to 64 (default 4): readers that open with the same
    /// ReaderOptions::group share the frames. A reader creating one more group than this is
    /// refused with Status::TooManyReaders; the last member to leave ends a group.
    std::uint32_t max_groups = shmline_stream_options_default().max_groups;
    /// What writers do when the ring is full (default Backpressure::Block).
    Backpressure backpressure =
        static_cast<Backpressure>(shmline_stream_options_default().backpressure);
    /// Permission bits of the segment (default 0600).
    std::uint32_t permissions = shmline_stream_options_default().permissions;
    /// Every frame carries a CRC32C that readers check (default false).
    bool checksum = shmline_stream_options_default().checksum != 0;
    /// Remove the name once this stream and every writer and reader opened from it are closed
    /// (default false: the stream lives until Stream::unlink()).
    bool unlink_on_close = shmline_stream_options_default().unlink_on_close != 0;
    /// The frames' type; empty (the default) means raw bytes up to max_frame_size.
    Schema schema;
};

/// Options of a writer, for Stream::writer().
struct WriterOptions {
    /// How the writer waits for space when the ring is full.
    WaitStrategy wait = static_cast<WaitStrategy>(shmline_writer_options_default().wait);
};

/// Options of a reader, for Stream::reader().
struct ReaderOptions {
    /// Where to start reading.
    StartPosition start = static_cast<StartPosition>(shmline_reader_options_default().start);
    /// How the reader waits for frames.
    WaitStrategy wait = static_cast<WaitStrategy>(shmline_reader_options_default().wait);
    /// A lossy reader never holds the writer back and is told how many frames it missed; it
    /// cannot acquire(). Default false.
    bool lossy = shmline_reader_options_default().lossy != 0;
    /// Refuse to open (Status::SchemaMismatch) unless the stream has exactly this schema; empty
    /// (the default): no requirement.
    Schema require_schema;
    /// Join the reader group of this name (competing consumers: each frame goes to exactly one
    /// member of the group; plain readers and other groups still get every frame). Empty (the
    /// default): a plain reader. A name is 1 to 63 bytes of `A-Za-z0-9_.-`
    /// (Status::InvalidName). The first member creates the group at `start`; later members join
    /// it where it is. Members see their frames in increasing order, with gaps where other
    /// members got frames. Members are lossless: `lossy` with a group, or a group on a
    /// Backpressure::DropOldest stream, is Status::InvalidArgument.
    ///
    /// Delivery is at-least-once within a group: a member that dies (SIGKILL) while it holds
    /// frames (acquired and not released, or in a read that has not returned) has them delivered
    /// again to another member (StreamStats::frames_redelivered counts them).
    std::string group;
};

/// Options of a new event, for Event::create().
struct EventOptions {
    /// Flag (the default) or counting.
    EventMode mode = static_cast<EventMode>(shmline_event_options_default().mode);
    /// Permission bits of the segment (default 0600).
    std::uint32_t permissions = shmline_event_options_default().permissions;
    /// Remove the name when this handle is closed (default false).
    bool unlink_on_close = shmline_event_options_default().unlink_on_close != 0;
};

/// Metadata of one frame: seq, timestamp_ns (CLOCK_MONOTONIC), len, flags and missed, as
/// documented for the C struct. The same type as in C, so batch reads fill it in place.
using FrameInfo = shmline_frame_info;

/// Fixed facts about a stream (capacity, max_frame_size, slot_size, max_readers, max_writers,
/// max_groups, backpressure, creator...), as documented for the C struct.
using StreamInfo = shmline_stream_info;

/// Counters of one attached reader (index, pid, alive, lossy, position, frames_read, bytes_read,
/// missed, lag, and `group`: the NUL-terminated name of its reader group, empty for a plain
/// reader), as documented for the C struct.
using ReaderStats = shmline_reader_stats;

/// A snapshot of a stream's shared counters, from Stream::stats(). Counters are read one by one
/// while the stream runs, so they need not be consistent with each other.
struct StreamStats {
    std::uint32_t capacity = 0;                   ///< Slots in the ring.
    WriterState writer_state = WriterState::None; ///< What the writer is doing.
    std::uint32_t writer_pid = 0;                 ///< Single-writer stream: its writer's pid; 0 if none.
    std::uint64_t frames_written = 0;             ///< Frames published so far.
    std::uint64_t bytes_written = 0;              ///< Payload bytes published so far.
    std::uint64_t writer_waits = 0;               ///< Times the writer found the ring full.
    Timeout writer_wait_time{0};                  ///< Total time the writer waited for space.
    std::uint64_t readers_reclaimed = 0;          ///< Dead readers whose slots were reclaimed.
    double fill = 0.0;                            ///< Fill seen by the slowest lossless reader, 0 to 1.
    std::uint64_t frames_dropped = 0;             ///< Frames discarded by Backpressure::DropNewest.
    /// Multi-writer streams: sequence numbers skipped because their writer died before
    /// publishing them (or aborted a reservation); readers count them in FrameInfo::missed.
    std::uint64_t frames_skipped = 0;
    std::uint32_t writer_count = 0;               ///< Multi-writer streams: writers attached now.
    std::uint64_t writers_reclaimed = 0;          ///< Multi-writer: dead writers' slots reclaimed.
    std::uint32_t group_count = 0;                ///< Reader groups with members now.
    /// Frames delivered again within reader groups because the member holding them died, summed
    /// over the groups (a group's count goes with it when its last member leaves).
    std::uint64_t frames_redelivered = 0;
    std::vector<ReaderStats> readers;             ///< Every attached reader, by slot index.
};

namespace detail {

/// The C `ndim` of `schema`, clamped rather than truncated so that an absurd shape is refused by
/// the library instead of being read as a short one.
inline std::uint32_t ndim(const Schema& schema) noexcept {
    return static_cast<std::uint32_t>(
        std::min<std::size_t>(schema.shape.size(), std::numeric_limits<std::uint32_t>::max()));
}

/// The C options for `options`; its pointers borrow from `options`, which must outlive the call.
inline shmline_stream_options to_c(const StreamOptions& options) noexcept {
    shmline_stream_options c = shmline_stream_options_default();
    c.capacity = options.capacity;
    c.max_frame_size = options.max_frame_size;
    c.max_readers = options.max_readers;
    c.max_writers = options.max_writers;
    c.max_groups = options.max_groups;
    c.backpressure = static_cast<std::uint32_t>(options.backpressure);
    c.permissions = options.permissions;
    c.checksum = options.checksum ? 1 : 0;
    c.unlink_on_close = options.unlink_on_close ? 1 : 0;
    if (!options.schema.empty()) {
        c.dtype = options.schema.dtype.c_str();
        c.ndim = ndim(options.schema);
        c.shape = options.schema.shape.data();
    }
    return c;
}

/// The C options for `options`; its pointers borrow from `options`, which must outlive the call.
inline shmline_reader_options to_c(const ReaderOptions& options) noexcept {
    shmline_reader_options c = shmline_reader_options_default();
    c.start = static_cast<std::uint32_t>(options.start);
    c.wait = static_cast<std::uint32_t>(options.wait);
    c.lossy = options.lossy ? 1 : 0;
    if (!options.require_schema.empty()) {
        c.require_dtype = options.require_schema.dtype.c_str();
        c.require_ndim = ndim(options.require_schema);
        c.require_shape = options.require_schema.shape.data();
    }
    if (!options.group.empty()) {
        c.group = options.group.c_str();
    }
    return c;
}

/// The stream counters of `c`, without the readers (the caller adds them, when it has them).
inline StreamStats to_stats(const shmline_stream_stats& c) {
    StreamStats stats;
    stats.capacity = c.capacity;
    stats.writer_state = static_cast<WriterState>(c.writer_state);
    stats.writer_pid = c.writer_pid;
    stats.frames_written = c.frames_written;
    stats.bytes_written = c.bytes_written;
    stats.writer_waits = c.writer_waits;
    stats.writer_wait_time = Timeout(static_cast<Timeout::rep>(c.writer_wait_ns));
    stats.readers_reclaimed = c.readers_reclaimed;
    stats.fill = c.fill;
    stats.frames_dropped = c.frames_dropped;
    stats.frames_skipped = c.frames_skipped;
    stats.writer_count = c.writer_count;
    stats.writers_reclaimed = c.writers_reclaimed;
    stats.group_count = c.group_count;
    stats.frames_redelivered = c.frames_redelivered;
    return stats;
}

/// Closes any C handle: the deleter of the owning unique_ptrs.
struct Closer {
    void operator()(shmline_stream* h) const noexcept { shmline_stream_close(h); }
    void operator()(shmline_writer* h) const noexcept { shmline_writer_close(h); }
    void operator()(shmline_reader* h) const noexcept { shmline_reader_close(h); }
    void operator()(shmline_event* h) const noexcept { shmline_event_close(h); }
};

template <class H>
using Owned = std::unique_ptr<H, Closer>;

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Zero-copy slots
// ---------------------------------------------------------------------------------------------

/// A slot reserved by Writer::reserve() for zero-copy writing: fill bytes() in place, and the
/// frame is published when the slot goes out of scope.
///
/// On normal scope exit it commits length() bytes (the whole slot unless set_length() said
/// otherwise) with flags(); if the scope is left by an exception it aborts instead, publishing
/// nothing. commit() and abort() do either at once. Until then readers cannot see the frame, and
/// the writer can do nothing else. Move-only; must not outlive its Writer.
///
/// A slot that holds no reservation (the reservation timed out, the ring was full, or the slot was
/// committed, aborted or moved from) is false; status() says why reserve() gave none.
class WriteSlot {
  public:
    /// Takes over `other`'s reservation; `other` is left empty.
    WriteSlot(WriteSlot&& other) noexcept
        : writer_(std::exchange(other.writer_, nullptr)),
          data_(other.data_),
          capacity_(other.capacity_),
          length_(other.length_),
          flags_(other.flags_),
          status_(other.status_),
          exceptions_(other.exceptions_) {}

    /// Finishes this slot's reservation (as on scope exit), then takes over `other`'s.
    WriteSlot& operator=(WriteSlot&& other) noexcept {
        if (this != &other) {
            finish();
            writer_ = std::exchange(other.writer_, nullptr);
            data_ = other.data_;
            capacity_ = other.capacity_;
            length_ = other.length_;
            flags_ = other.flags_;
            status_ = other.status_;
            exceptions_ = other.exceptions_;
        }
        return *this;
    }

    /// Not copyable: one reservation has one owner.
    WriteSlot(const WriteSlot&) = delete;
    /// Not copyable: one reservation has one owner.
    WriteSlot& operator=(const WriteSlot&) = delete;

    /// Commits length() bytes, or aborts while an exception leaves the scope (see the class).
    /// A failure to commit cannot be reported from here: call commit() to see it.
    ~WriteSlot() { finish(); }

    /// Whether the slot holds a reservation.
    explicit operator bool() const noexcept { return writer_ != nullptr; }

    /// How the reservation went: Status::Ok, or the outcome or error that left the slot empty
    /// (Full, Timeout; for try_reserve() also any error).
    [[nodiscard]] Status status() const noexcept { return status_; }

    /// The slot's first byte in shared memory; null when the slot is empty.
    std::byte* data() const noexcept { return writer_ ? data_ : nullptr; }

    /// The slot's size in bytes: the stream's maximum frame size (0 when empty).
    std::size_t capacity() const noexcept { return writer_ ? capacity_ : 0; }

    /// The whole slot, to fill in place (empty when the slot is).
    MutableBytes bytes() const noexcept { return MutableBytes(data(), capacity()); }

    /// The frame length committed on scope exit: capacity() unless set_length() changed it.
    std::size_t length() const noexcept { return length_; }

    /// Declares the frame's length for the commit on scope exit. Throws Error with
    /// Status::FrameTooLarge if `length` exceeds capacity(), Status::WrongState if the slot is
    /// empty.
    void set_length(std::size_t length) {
        require_reservation();
        if (length > capacity_) {
            throw Error(Status::FrameTooLarge,
                        "frame of " + std::to_string(length) + " bytes exceeds the slot's " +
                            std::to_string(capacity_) + " bytes");
        }
        length_ = length;
    }

    /// The application flags committed on scope exit (default 0).
    std::uint32_t flags() const noexcept { return flags_; }

    /// Sets the application flags readers will see in FrameInfo::flags.
    void set_flags(std::uint32_t flags) noexcept { flags_ = flags; }

    /// Publishes the first length() bytes now with flags(); the slot becomes empty. Never blocks.
    /// Throws Error with Status::WrongState if the slot is empty.
    void commit() { commit(length_, flags_); }

    /// Publishes the first `length` bytes now with `flags`; the slot becomes empty. Never blocks.
    /// Throws Error: Status::FrameTooLarge if `length` exceeds capacity() (the slot stays
    /// reserved), Status::WrongState if the slot is empty.
    void commit(std::size_t length, std::uint32_t flags = 0) {
        require_reservation();
        detail::check(shmline_writer_commit(writer_, length, flags));
        writer_ = nullptr;
    }

    /// Drops the reservation without publishing anything; does nothing if the slot is empty.
    /// Never blocks.
    void abort() noexcept {
        if (writer_ != nullptr) {
            // Cannot fail: this slot holds the writer's only reservation.
            static_cast<void>(shmline_writer_abort(writer_));
            writer_ = nullptr;
        }
    }

  private:
    friend class Writer;

    WriteSlot(shmline_writer* writer, std::byte* data, std::size_t capacity,
              Status status) noexcept
        : writer_(writer),
          data_(data),
          capacity_(capacity),
          length_(capacity),
          status_(status),
          exceptions_(std::uncaught_exceptions()) {}

    void require_reservation() const {
        if (writer_ == nullptr) {
            throw Error(Status::WrongState, "the WriteSlot holds no reservation");
        }
    }

    // More uncaught exceptions than when the slot was reserved means this scope is being left by
    // an exception: the frame may be half-filled, so it must not be published.
    void finish() noexcept {
        if (writer_ == nullptr) {
            return;
        }
        if (std::uncaught_exceptions() > exceptions_ ||
            shmline_writer_commit(writer_, length_, flags_) != SHMLINE_OK) {
            abort();
        }
        writer_ = nullptr;
    }

    shmline_writer* writer_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t length_ = 0;
    std::uint32_t flags_ = 0;
    Status status_ = Status::Ok;
    int exceptions_ = 0;
};

/// A frame lent in place by Reader::acquire(): read it through bytes() (no copy), and it is
/// released when the slot goes out of scope (or at release()). Until then the writer cannot
/// reuse its slot, so hold it briefly. Move-only; must not outlive its Reader.
///
/// A slot without a frame (timeout, end of stream...) is false; status() says why.
class ReadSlot {
  public:
    /// Takes over `other`'s frame; `other` is left empty.
    ReadSlot(ReadSlot&& other) noexcept
        : reader_(std::exchange(other.reader_, nullptr)),
          data_(other.data_),
          info_(other.info_),
          status_(other.status_) {}

    /// Releases this slot's frame, then takes over `other`'s.
    ReadSlot& operator=(ReadSlot&& other) noexcept {
        if (this != &other) {
            release();
            reader_ = std::exchange(other.reader_, nullptr);
            data_ = other.data_;
            info_ = other.info_;
            status_ = other.status_;
        }
        return *this;
    }

    /// Not copyable: one frame has one owner.
    ReadSlot(const ReadSlot&) = delete;
    /// Not copyable: one frame has one owner.
    ReadSlot& operator=(const ReadSlot&) = delete;

    /// Releases the frame.
    ~ReadSlot() { release(); }

    /// Whether the slot holds a frame.
    explicit operator bool() const noexcept { return reader_ != nullptr; }

    /// How the acquire went: Status::Ok, or the outcome that left the slot empty (Empty,
    /// Timeout, EndOfStream, WriterDead; for try_acquire() also any error).
    [[nodiscard]] Status status() const noexcept { return status_; }

    /// The frame's metadata (all zero when the slot never held a frame).
    const FrameInfo& info() const noexcept { return info_; }

    /// The frame's first byte in shared memory (read only); null when the slot is empty.
    const std::byte* data() const noexcept { return reader_ ? data_ : nullptr; }

    /// The frame's length in bytes (0 when the slot is empty).
    std::size_t size() const noexcept { return reader_ ? info_.len : 0; }

    /// The frame's bytes (empty when the slot is).
    ConstBytes bytes() const noexcept { return ConstBytes(data(), size()); }

    /// Releases the frame now; the slot becomes empty and its bytes invalid. Does nothing if the
    /// slot is empty. Never blocks.
    void release() noexcept {
        if (reader_ != nullptr) {
            // Cannot fail: this slot holds the reader's only acquired frame.
            static_cast<void>(shmline_reader_release(reader_));
            reader_ = nullptr;
        }
    }

  private:
    friend class Reader;

    ReadSlot(shmline_reader* reader, const void* data, const FrameInfo& info,
             Status status) noexcept
        : reader_(reader), data_(static_cast<const std::byte*>(data)), info_(info), status_(status) {}

    shmline_reader* reader_ = nullptr;
    const std::byte* data_ = nullptr;
    FrameInfo info_{};
    Status status_ = Status::Ok;
};

// ---------------------------------------------------------------------------------------------
// Writer and Reader
// ---------------------------------------------------------------------------------------------

/// A writer of a stream, from Stream::writer(). A single-writer stream has one writer for its
/// whole life; a multi-writer stream (StreamOptions::max_writers > 1) up to max_writers at once.
/// Destroying or closing the Writer ends the stream (of a multi-writer stream: closing the last
/// one does); readers drain what is left, then get Status::EndOfStream. Use it from one thread at a time. It keeps the stream mapped, so it may
/// outlive the Stream it came from.
class Writer {
  public:
    /// An empty writer (false); assign one from Stream::writer().
    Writer() noexcept = default;

    /// Whether the writer is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_writer* handle() const noexcept { return handle_.get(); }

    /// Closes the writer now and ends the stream; a reserved slot is dropped. Does nothing if
    /// already closed.
    void close() noexcept { handle_.reset(); }

    /// Copies `data` into the stream as one frame with application `flags`. When the slowest
    /// lossless reader is a whole ring behind, the stream's Backpressure decides: Block waits up
    /// to `timeout`; Fail returns Status::Full at once, whatever `timeout`; DropNewest discards
    /// the frame, counts it in frames_dropped() and returns Status::Ok; DropOldest never finds
    /// the ring full.
    ///
    /// Returns Status::Ok, or an outcome when nothing was written: Status::Timeout, or
    /// Status::Full (`timeout` zero, or Backpressure::Fail). Throws Error:
    /// Status::FrameTooLarge, Status::InvalidArgument (a size no buffer can have),
    /// Status::WrongState (a slot is reserved, or the writer is closed)...
    [[nodiscard]] Status write(ConstBytes data, std::uint32_t flags = 0, Timeout timeout = forever) {
        return write(data.data(), data.size(), flags, timeout);
    }

    /// As write(ConstBytes...), for the `size` bytes at `data` (which may be null when `size` is 0).
    [[nodiscard]] Status write(const void* data, std::size_t size, std::uint32_t flags = 0,
                 Timeout timeout = forever) {
        return detail::check(
            shmline_writer_write(handle_.get(), data, size, flags, detail::nanos(timeout)));
    }

    /// Writes `data` as one frame if there is space now. Never blocks, never throws.
    ///
    /// Returns Status::Ok, Status::Full (nothing written), or an error status.
    [[nodiscard]] Status try_write(ConstBytes data, std::uint32_t flags = 0) noexcept {
        return try_write(data.data(), data.size(), flags);
    }

    /// As try_write(ConstBytes...), for the `size` bytes at `data`.
    [[nodiscard]] Status try_write(const void* data, std::size_t size,
                                   std::uint32_t flags = 0) noexcept {
        return static_cast<Status>(shmline_writer_try_write(handle_.get(), data, size, flags));
    }

    /// Writes `lengths.size()` frames lying back to back in `data` (frame i is `lengths[i]`
    /// bytes), all with `flags`; `written` receives how many were written. Waits up to `timeout`
    /// for space for the first frame; once some are written and the deadline passes, it stops
    /// there. Much cheaper per frame than write() for small frames.
    ///
    /// A full ring is handled as by write(): Backpressure::Fail returns Status::Full at once,
    /// DropNewest discards (and counts) the frames that do not fit.
    ///
    /// Returns Status::Ok (`written` at least 1 when there was a frame), or Status::Timeout /
    /// Status::Full with `written` 0. Throws Error: Status::InvalidArgument (the lengths add up
    /// to more than `data`), Status::FrameTooLarge (nothing written), Status::WrongState...
    [[nodiscard]] Status write_batch(ConstBytes data, Span<const std::size_t> lengths, std::size_t& written,
                       std::uint32_t flags = 0, Timeout timeout = forever) {
        written = 0;
        if (!lengths_fit(data, lengths)) {
            throw Error(Status::InvalidArgument, lengths_message(data, lengths));
        }
        return detail::check(shmline_writer_write_batch(handle_.get(), data.data(),
                                                        lengths.data(), lengths.size(), flags,
                                                        detail::nanos(timeout), &written));
    }

    /// As write_batch(), writing only what fits now. Never blocks, never throws: returns
    /// Status::Ok, Status::Full, or an error status (Status::InvalidArgument when the lengths
    /// add up to more than `data`: this check is made in C++ and sets no last_error_message()).
    [[nodiscard]] Status try_write_batch(ConstBytes data, Span<const std::size_t> lengths,
                                         std::size_t& written, std::uint32_t flags = 0) noexcept {
        written = 0;
        if (!lengths_fit(data, lengths)) {
            return Status::InvalidArgument;
        }
        return static_cast<Status>(shmline_writer_write_batch(
            handle_.get(), data.data(), lengths.data(), lengths.size(), flags, 0, &written));
    }

    /// Reserves the next slot for zero-copy writing, waiting up to `timeout` for space. The
    /// returned WriteSlot publishes its frame on scope exit (see WriteSlot).
    ///
    /// Returns a slot that is true, or false with status() Status::Timeout, or Status::Full
    /// (`timeout` zero, or a full ring under Backpressure::Fail or DropNewest, which never wait:
    /// there is no frame to drop yet). Throws Error: Status::WrongState (a slot is already
    /// reserved)...
    [[nodiscard]] WriteSlot reserve(Timeout timeout = forever) {
        void* slot = nullptr;
        std::size_t capacity = 0;
        const Status status = detail::check(
            shmline_writer_reserve(handle_.get(), detail::nanos(timeout), &slot, &capacity));
        return make_slot(status, slot, capacity);
    }

    /// Reserves the next slot if there is space now. Never blocks, never throws: the slot is
    /// false when its status() is Status::Full or an error.
    [[nodiscard]] WriteSlot try_reserve() noexcept {
        void* slot = nullptr;
        std::size_t capacity = 0;
        const auto status =
            static_cast<Status>(shmline_writer_reserve(handle_.get(), 0, &slot, &capacity));
        return make_slot(status, slot, capacity);
    }

    /// Waits up to `timeout` until at least `count` readers are attached, so that no frame is
    /// written before they exist. Polls every millisecond (meant for start-up). Returns true when
    /// they are there, false on timeout. Throws Error for errors.
    [[nodiscard]] bool wait_for_readers(std::size_t count, Timeout timeout = forever) const {
        return detail::check(shmline_writer_wait_for_readers(handle_.get(), count,
                                                             detail::nanos(timeout))) ==
               Status::Ok;
    }

    /// The sequence number the next frame will get: the number of frames written so far.
    std::uint64_t position() const {
        std::uint64_t position = 0;
        detail::check(shmline_writer_position(handle_.get(), &position));
        return position;
    }

    /// Frames this writer discarded because the ring was full (Backpressure::DropNewest; always
    /// 0 under the other policies).
    std::uint64_t frames_dropped() const {
        std::uint64_t dropped = 0;
        detail::check(shmline_writer_frames_dropped(handle_.get(), &dropped));
        return dropped;
    }

  private:
    friend class Stream;
    friend class Task;

    explicit Writer(shmline_writer* handle) noexcept : handle_(handle) {}

    [[nodiscard]] static bool lengths_fit(ConstBytes data, Span<const std::size_t> lengths) noexcept {
        std::size_t left = data.size();
        for (const std::size_t length : lengths) {
            if (length > left) {
                return false;
            }
            left -= length;
        }
        return true;
    }

    static std::string lengths_message(ConstBytes data, Span<const std::size_t> lengths) {
        return "the " + std::to_string(lengths.size()) + " frame lengths add up to more than the " +
               std::to_string(data.size()) + " bytes of data";
    }

    WriteSlot make_slot(Status status, void* slot, std::size_t capacity) noexcept {
        if (status != Status::Ok) {
            return WriteSlot(nullptr, nullptr, 0, status);
        }
        return WriteSlot(handle_.get(), static_cast<std::byte*>(slot), capacity, status);
    }

    detail::Owned<shmline_writer> handle_;
};

/// A reader of a stream, from Stream::reader(): sees every frame in order (a lossy reader: every
/// frame not overwritten before it got there). Use it from one thread at a time. It keeps the
/// stream mapped, so it may outlive the Stream it came from.
class Reader {
  public:
    /// An empty reader (false); assign one from Stream::reader().
    Reader() noexcept = default;

    /// Whether the reader is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_reader* handle() const noexcept { return handle_.get(); }

    /// Leaves the stream now (no longer holding the writer back). Does nothing if closed.
    void close() noexcept { handle_.reset(); }

    /// Copies the next frame into `buffer` and its metadata into `info`, waiting up to `timeout`
    /// for one. StreamInfo::max_frame_size bytes are always enough.
    ///
    /// Returns Status::Ok, or an outcome when nothing was read: Status::Timeout (Status::Empty
    /// when `timeout` is zero), Status::EndOfStream, Status::WriterDead. Throws Error:
    /// Status::BufferTooSmall (the frame stays unread; the message gives its length),
    /// Status::WrongState (a frame is acquired), Status::Corrupt...
    [[nodiscard]] Status read(MutableBytes buffer, FrameInfo& info, Timeout timeout = forever) {
        return detail::check(shmline_reader_read(handle_.get(), buffer.data(), buffer.size(),
                                                 detail::nanos(timeout), &info));
    }

    /// Reads the next frame if there is one now. Never blocks, never throws: returns
    /// Status::Ok, Status::Empty, Status::EndOfStream, Status::WriterDead or an error status
    /// (on Status::BufferTooSmall, `info.len` is the frame's length).
    [[nodiscard]] Status try_read(MutableBytes buffer, FrameInfo& info) noexcept {
        return static_cast<Status>(
            shmline_reader_try_read(handle_.get(), buffer.data(), buffer.size(), &info));
    }

    /// Copies up to `infos.size()` available frames back to back into `buffer`, their metadata
    /// into `infos[0 .. count)`; frame i starts after the `len` of the frames before it. Waits up
    /// to `timeout` for the first frame, then takes only frames already published that fit.
    ///
    /// Returns Status::Ok with `count` at least 1, or an outcome with `count` 0 (as read()).
    /// Throws Error: Status::BufferTooSmall (the first frame does not fit; `infos[0].len` is its
    /// length), Status::InvalidArgument (`infos` is empty)...
    [[nodiscard]] Status read_batch(MutableBytes buffer, Span<FrameInfo> infos, std::size_t& count,
                                    Timeout timeout = forever) {
        count = 0;
        return detail::check(shmline_reader_read_batch(handle_.get(), buffer.data(),
                                                       buffer.size(), infos.data(), infos.size(),
                                                       detail::nanos(timeout), &count));
    }

    /// As read_batch(), taking only frames available now. Never blocks, never throws.
    [[nodiscard]] Status try_read_batch(MutableBytes buffer, Span<FrameInfo> infos,
                                        std::size_t& count) noexcept {
        count = 0;
        return static_cast<Status>(shmline_reader_read_batch(handle_.get(), buffer.data(),
                                                             buffer.size(), infos.data(),
                                                             infos.size(), 0, &count));
    }

    /// Lends the next frame in place, without a copy, waiting up to `timeout` for one; the
    /// returned ReadSlot releases it on scope exit. Lossless readers only.
    ///
    /// Returns a slot that is true, or false with status() Status::Timeout (Status::Empty when
    /// `timeout` is zero), Status::EndOfStream or Status::WriterDead. Throws Error:
    /// Status::Unsupported (lossy reader), Status::WrongState (a frame is already acquired)...
    [[nodiscard]] ReadSlot acquire(Timeout timeout = forever) {
        const void* data = nullptr;
        FrameInfo info{};
        const Status status = detail::check(
            shmline_reader_acquire(handle_.get(), detail::nanos(timeout), &data, &info));
        return make_slot(status, data, info);
    }

    /// Lends the next frame if there is one now. Never blocks, never throws: the slot is false
    /// when its status() is an outcome or an error.
    [[nodiscard]] ReadSlot try_acquire() noexcept {
        const void* data = nullptr;
        FrameInfo info{};
        const auto status =
            static_cast<Status>(shmline_reader_acquire(handle_.get(), 0, &data, &info));
        return make_slot(status, data, info);
    }

    /// How many frames this reader has missed in total: frames a lossy reader was lapped on, and
    /// sequence numbers of a multi-writer stream skipped because their writer died (always 0 for
    /// a lossless reader of a single-writer stream).
    std::uint64_t missed() const {
        std::uint64_t missed = 0;
        detail::check(shmline_reader_missed(handle_.get(), &missed));
        return missed;
    }

    /// The sequence number of the next frame this reader will read.
    std::uint64_t position() const {
        std::uint64_t position = 0;
        detail::check(shmline_reader_position(handle_.get(), &position));
        return position;
    }

  private:
    friend class Stream;
    friend class Task;

    explicit Reader(shmline_reader* handle) noexcept : handle_(handle) {}

    ReadSlot make_slot(Status status, const void* data, const FrameInfo& info) noexcept {
        return ReadSlot(status == Status::Ok ? handle_.get() : nullptr, data, info, status);
    }

    detail::Owned<shmline_reader> handle_;
};

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// A stream opened in this process: a ring of frames in shared memory with one writer (or up to
/// max_writers) and up to
/// max_readers readers, in any processes. Any number of threads may use one Stream at once.
/// Writers and readers keep the memory mapped, so the Stream may be destroyed before them.
class Stream {
  public:
    /// An empty stream (false); assign one from create() or open().
    Stream() noexcept = default;

    /// Creates the stream `name` (exclusive: Status::AlreadyExists if it exists) and opens it.
    /// The segment is `/dev/shm/shmline.stream.<name>`. A stream needs a max_frame_size or a
    /// schema. Throws Error: Status::InvalidName, Status::InvalidArgument, Status::AlreadyExists,
    /// Status::PermissionDenied, Status::NoSpace...
    static Stream create(const std::string& name, const StreamOptions& options = {}) {
        const shmline_stream_options c = detail::to_c(options);
        shmline_stream* handle = nullptr;
        detail::check(shmline_stream_create(name.c_str(), &c, &handle));
        return Stream(handle);
    }

    /// Opens the existing stream `name`, checking its layout version and sizes. Throws Error:
    /// Status::NotFound, Status::InvalidName, Status::NotShmline, Status::VersionMismatch,
    /// Status::Corrupt, Status::PermissionDenied...
    static Stream open(const std::string& name) {
        shmline_stream* handle = nullptr;
        detail::check(shmline_stream_open(name.c_str(), &handle));
        return Stream(handle);
    }

    /// Removes the name `name`: processes that have the stream open keep using it, later opens
    /// get Status::NotFound. Throws Error: Status::NotFound, Status::InvalidName...
    static void unlink(const std::string& name) {
        detail::check(shmline_stream_unlink(name.c_str()));
    }

    /// Removes stream `name` if nobody alive uses it (its creator, writer and readers are dead),
    /// so the name can be created again after a crash; create() never does that by itself.
    /// Returns true if it removed the stream, false if there was none. Throws Error:
    /// Status::AlreadyExists (a live process uses it; the message names it; nothing is removed),
    /// Status::NotShmline (the file is not a finished shmline stream: left alone),
    /// Status::Corrupt, Status::VersionMismatch, Status::InvalidName...
    [[nodiscard]] static bool remove_stale(const std::string& name) {
        const std::int32_t status = shmline_stream_remove_stale(name.c_str());
        if (status == SHMLINE_NOT_FOUND) {
            return false;
        }
        detail::check(status);
        return true;
    }

    /// The names of the streams that exist on this machine. Throws Error on an OS error.
    static std::vector<std::string> list() {
        std::vector<char> names;
        for (;;) {
            std::size_t needed = 0;
            const std::int32_t status = shmline_stream_list(names.data(), names.size(), &needed);
            if (status == SHMLINE_BUFFER_TOO_SMALL) {
                // Streams may appear between the calls: grow and ask again.
                names.resize(needed);
                continue;
            }
            detail::check(status);
            break;
        }
        std::vector<std::string> result;
        for (const char* name = names.data(); name != nullptr && *name != '\0';
             name += std::strlen(name) + 1) {
            result.emplace_back(name);
        }
        return result;
    }

    /// Whether the stream is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_stream* handle() const noexcept { return handle_.get(); }

    /// Closes this handle now (removing the name if created with unlink_on_close and nothing
    /// else has it open). Does not end the stream: only the writer's close does. Does nothing if
    /// already closed.
    void close() noexcept { handle_.reset(); }

    /// The stream's name (empty when closed).
    std::string name() const {
        const char* name = shmline_stream_name(handle_.get());
        return name != nullptr ? name : "";
    }

    /// The stream's fixed facts (capacity, max_frame_size, max_readers...).
    StreamInfo info() const {
        StreamInfo info{};
        detail::check(shmline_stream_get_info(handle_.get(), &info));
        return info;
    }

    /// The stream's schema; empty for a stream of raw bytes.
    Schema schema() const {
        char dtype[SHMLINE_DTYPE_LEN] = {};
        std::uint64_t shape[SHMLINE_MAX_NDIM] = {};
        std::uint32_t ndim = 0;
        detail::check(shmline_stream_get_schema(handle_.get(), dtype, sizeof dtype, shape,
                                                SHMLINE_MAX_NDIM, &ndim));
        return Schema{dtype, std::vector<std::uint64_t>(shape, shape + ndim)};
    }

    /// A snapshot of the stream's shared counters and of every attached reader. Only reads
    /// shared memory: never disturbs the writer or the readers.
    StreamStats stats() const {
        std::vector<ReaderStats> readers(info().max_readers);
        shmline_stream_stats c{};
        detail::check(
            shmline_stream_get_stats(handle_.get(), &c, readers.data(), readers.size()));
        readers.resize(std::min<std::size_t>(c.reader_count, readers.size()));
        StreamStats stats = detail::to_stats(c);
        stats.readers = std::move(readers);
        return stats;
    }

    /// Opens a writer of the stream. A single-writer stream (max_writers 1) has one writer for
    /// its whole life; a multi-writer stream takes up to max_writers live writers at once, from
    /// any processes. Throws Error: Status::WriterExists (a single-writer stream that has or had
    /// one), Status::TooManyWriters (max_writers live writers already), Status::WrongState (the
    /// stream has ended), Status::InvalidArgument...
    Writer writer(const WriterOptions& options = {}) const {
        shmline_writer_options c = shmline_writer_options_default();
        c.wait = static_cast<std::uint32_t>(options.wait);
        shmline_writer* handle = nullptr;
        detail::check(shmline_writer_open(handle_.get(), &c, &handle));
        return Writer(handle);
    }

    /// Opens a reader of the stream (a member of a reader group if options.group is set).
    /// Throws Error: Status::TooManyReaders (every reader slot taken, or a new group beyond
    /// max_groups), Status::SchemaMismatch (options.require_schema is not the stream's),
    /// Status::InvalidName (a bad group name), Status::InvalidArgument (a lossy member)...
    Reader reader(const ReaderOptions& options = {}) const {
        const shmline_reader_options c = detail::to_c(options);
        shmline_reader* handle = nullptr;
        detail::check(shmline_reader_open(handle_.get(), &c, &handle));
        return Reader(handle);
    }

  private:
    explicit Stream(shmline_stream* handle) noexcept : handle_(handle) {}

    detail::Owned<shmline_stream> handle_;
};

// ---------------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------------

/// A named, process-shared event: a flag (a switch that stays on until cleared) or a counter of
/// pending signals (each set releases one wait). Any number of threads and processes may use
/// one at once.
class Event {
  public:
    /// An empty event (false); assign one from create() or open().
    Event() noexcept = default;

    /// Creates the clear event `name` (exclusive) and opens it; the segment is
    /// `/dev/shm/shmline.event.<name>`. Throws Error: Status::AlreadyExists,
    /// Status::InvalidName, Status::InvalidArgument...
    static Event create(const std::string& name, const EventOptions& options = {}) {
        shmline_event_options c = shmline_event_options_default();
        c.mode = static_cast<std::uint32_t>(options.mode);
        c.permissions = options.permissions;
        c.unlink_on_close = options.unlink_on_close ? 1 : 0;
        shmline_event* handle = nullptr;
        detail::check(shmline_event_create(name.c_str(), &c, &handle));
        return Event(handle);
    }

    /// Opens the existing event `name`. Throws Error: Status::NotFound, Status::NotShmline...
    static Event open(const std::string& name) {
        shmline_event* handle = nullptr;
        detail::check(shmline_event_open(name.c_str(), &handle));
        return Event(handle);
    }

    /// Removes the name `name`; open handles keep working. Throws Error: Status::NotFound...
    static void unlink(const std::string& name) {
        detail::check(shmline_event_unlink(name.c_str()));
    }

    /// Removes event `name` if its creator is dead, so the name can be created again after a
    /// crash. Returns true if it removed the event, false if there was none. Throws Error:
    /// Status::AlreadyExists (its creator is alive; nothing is removed), Status::NotShmline (the
    /// file is not a finished shmline event: left alone)...
    [[nodiscard]] static bool remove_stale(const std::string& name) {
        const std::int32_t status = shmline_event_remove_stale(name.c_str());
        if (status == SHMLINE_NOT_FOUND) {
            return false;
        }
        detail::check(status);
        return true;
    }

    /// Whether the event is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_event* handle() const noexcept { return handle_.get(); }

    /// Closes this handle now (removing the name if created with unlink_on_close). Does nothing
    /// if already closed.
    void close() noexcept { handle_.reset(); }

    /// Flag: turns the event on and wakes every waiter. Counting: adds one pending signal and
    /// wakes one waiter. What this thread wrote before is visible to the waiter it releases.
    /// Never blocks.
    void set() const { detail::check(shmline_event_set(handle_.get())); }

    /// Turns the event off (flag) or discards every pending signal (counting). Never blocks.
    void clear() const { detail::check(shmline_event_clear(handle_.get())); }

    /// Whether the event is on (flag) or has a pending signal (counting) now, without taking it.
    [[nodiscard]] bool is_set() const {
        bool set = false;
        detail::check(shmline_event_is_set(handle_.get(), &set));
        return set;
    }

    /// The raw value: pending signals (counting) or 0/1 (flag). A snapshot for monitoring.
    std::uint32_t count() const {
        std::uint32_t count = 0;
        detail::check(shmline_event_count(handle_.get(), &count));
        return count;
    }

    /// The event's mode, chosen by its creator.
    EventMode mode() const {
        std::uint32_t mode = 0;
        detail::check(shmline_event_mode(handle_.get(), &mode));
        return static_cast<EventMode>(mode);
    }

    /// Waits up to `timeout` until the event is on (flag; waiting does not turn it off) or takes
    /// one pending signal (counting). Returns true then, false on timeout. Sleeps on a futex.
    [[nodiscard]] bool wait(Timeout timeout = forever) const {
        return detail::check(shmline_event_wait(handle_.get(), detail::nanos(timeout))) ==
               Status::Ok;
    }

    /// As wait() without waiting. Never blocks, never throws: returns Status::Ok (set, or a
    /// signal taken), Status::Empty, or an error status.
    [[nodiscard]] Status try_wait() const noexcept {
        return static_cast<Status>(shmline_event_wait(handle_.get(), 0));
    }

  private:
    friend class Task;

    explicit Event(shmline_event* handle) noexcept : handle_(handle) {}

    detail::Owned<shmline_event> handle_;
};

// ---------------------------------------------------------------------------------------------
// WaitSet
// ---------------------------------------------------------------------------------------------

/// Readers (of any streams: lossless, lossy, group members) and events to wait on together:
/// wait() sleeps (no CPU) until at least one is ready and returns the keys of those that are.
///
/// A reader is ready when its next read returns at once (a frame, Status::EndOfStream,
/// Status::WriterDead or an error); an event when it is on (flag) or has a pending signal
/// (counting; the set does not take it: try_wait() does, and may find another waiter took it).
/// Readiness is level-triggered: remove() a reader that reached its end. The set refers to its
/// members and owns none: remove a member (or destroy the set) before closing it. Move-only;
/// use a set and its readers from one thread at a time.
///
///     shmline::WaitSet set;
///     const std::size_t a = set.add(reader_a), stop = set.add(stop_event);
///     for (std::size_t key : set.wait(std::chrono::seconds(1))) { ... }
class WaitSet {
  public:
    /// An empty set. Throws Error on failure.
    WaitSet() {
        shmline_waitset* handle = nullptr;
        detail::check(shmline_waitset_create(&handle));
        handle_.reset(handle);
    }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_waitset* handle() const noexcept { return handle_.get(); }

    /// Adds a reader; returns its key (the number of members added before it, removed ones
    /// included). Throws Error: Status::InvalidArgument (in the set already),
    /// Status::NullPointer (a closed reader).
    std::size_t add(Reader& reader) {
        std::size_t key = 0;
        detail::check(shmline_waitset_add_reader(handle_.get(), reader.handle(), &key));
        added_ = key + 1;
        return key;
    }

    /// Adds an event; returns its key. Throws Error as add(Reader&) does.
    std::size_t add(const Event& event) {
        std::size_t key = 0;
        detail::check(shmline_waitset_add_event(handle_.get(), event.handle(), &key));
        added_ = key + 1;
        return key;
    }

    /// Removes the member of key `key` (it stays open); the other keys do not change. Throws
    /// Error: Status::InvalidArgument (no such member).
    void remove(std::size_t key) { detail::check(shmline_waitset_remove(handle_.get(), key)); }

    /// Waits up to `timeout` until at least one member is ready and returns the keys of the
    /// ready ones in increasing order: empty on timeout (or, for a zero timeout, if none is ready
    /// now). Throws Error: Status::InvalidArgument (no member).
    [[nodiscard]] std::vector<std::size_t> wait(Timeout timeout = forever) {
        // Every key is below added_: room for all of them.
        std::vector<std::size_t> keys(std::max<std::size_t>(added_, 1));
        std::size_t count = 0;
        const Status status = detail::check(shmline_waitset_wait(
            handle_.get(), detail::nanos(timeout), keys.data(), keys.size(), &count));
        if (status != Status::Ok) {
            return {};
        }
        keys.resize(count);
        return keys;
    }

  private:
    struct Closer {
        void operator()(shmline_waitset* h) const noexcept { shmline_waitset_close(h); }
    };

    /// Members added so far (removed ones included).
    std::size_t added_ = 0;

    std::unique_ptr<shmline_waitset, Closer> handle_;
};

// ---------------------------------------------------------------------------------------------
// Pipelines: joining one as a task (Task), declaring and running one (Pipeline, Run)
// ---------------------------------------------------------------------------------------------
//
// Task, Pipeline and Run follow the rules at the top: each owns one C handle, moves but never
// copies, closes it in its destructor, and throws Error for setup failures. A task that fails
// while a pipeline runs is no setup failure of the program running it: it is how the run ended,
// thrown as PipelineFailed, which carries the run's report.

/// What a task's parameter is bound to, for Pipeline::bind() (the C `SHMLINE_BINDING_*` values).
enum class Binding : std::uint32_t {
    Read = SHMLINE_BINDING_READ,   ///< The task reads a stream (it takes a Task::reader()).
    Write = SHMLINE_BINDING_WRITE, ///< The task writes a stream (it takes a Task::writer()).
    Event = SHMLINE_BINDING_EVENT, ///< The task uses an event (it takes a Task::event()).
};

/// How a pipeline run ended (the C `SHMLINE_RUN_*` values).
enum class RunOutcome : std::uint32_t {
    Finished = SHMLINE_RUN_FINISHED, ///< Every task exited with status 0.
    Failed = SHMLINE_RUN_FAILED,     ///< A task failed, could not start or never joined.
    Stopped = SHMLINE_RUN_STOPPED,   ///< Stopped on request (Run::stop()) or by a signal.
};

/// How a task's process ended (the C `SHMLINE_EXIT_*` values).
enum class TaskExit : std::uint32_t {
    None = SHMLINE_EXIT_NONE,     ///< It never started, or was not reaped.
    Code = SHMLINE_EXIT_CODE,     ///< It exited; TaskReport::exit_value is its exit status.
    Signal = SHMLINE_EXIT_SIGNAL, ///< A signal killed it; TaskReport::exit_value is its number.
};

/// How one task of an ended run ended, from Run::report().
struct TaskReport {
    std::uint32_t pid = 0;          ///< The process id it ran as; 0 if it never started.
    TaskExit exit = TaskExit::None; ///< Whether it exited or was killed by a signal.
    std::int32_t exit_value = 0;    ///< Its exit status or signal number (see exit); else 0.
    /// True if the runner asked it to stop (after another task failed, or on request), so that
    /// its exit is not a failure of its own.
    bool stopped = false;
    Timeout cpu_time{0};            ///< CPU time (user + system) of the process and its children.
};

/// How a pipeline run ended, from Pipeline::run(), Run::report() and PipelineFailed::report().
struct RunReport {
    RunOutcome outcome = RunOutcome::Finished; ///< Finished, failed or stopped.
    /// With RunOutcome::Stopped: the signal that asked for the stop, or 0 for Run::stop().
    int signal = 0;
    Timeout duration{0};             ///< Wall time from the start to the end.
    Timeout running{0};              ///< Wall time from the moment every task had joined.
    std::uint32_t stream_count = 0;  ///< Number of streams.
    std::uint32_t task_count = 0;    ///< Number of tasks.
    std::uint64_t frames = 0;        ///< Frames written, all streams together.
    std::uint64_t bytes = 0;         ///< Payload bytes written, all streams together.
    /// Every task, in declaration order. Filled by Run::report() (and a PipelineFailed thrown by
    /// Run::wait()); empty from Pipeline::run(), which reports the run as a whole.
    std::vector<TaskReport> tasks;
};

/// The Error thrown when a pipeline run ends in failure (Status::PipelineFailed): a task exited
/// non-zero or was killed, could not start or never joined (the message names it and its exit
/// status or signal; the other tasks were stopped), or a signal stopped Pipeline::run(). Every
/// segment of the pipeline is already removed. report() tells how each part ended.
class PipelineFailed : public Error {
  public:
    /// The failure of a run with `message` (what went wrong) and its `report`.
    PipelineFailed(const std::string& message, RunReport report)
        : Error(Status::PipelineFailed, message),
          report_(std::make_shared<const RunReport>(std::move(report))) {}

    /// How the run ended.
    const RunReport& report() const noexcept { return *report_; }

  private:
    // Shared, so that copying the exception never throws.
    std::shared_ptr<const RunReport> report_;
};

namespace detail {

/// Closes the pipeline handles: the deleter of their owning unique_ptrs.
struct PipelineCloser {
    void operator()(shmline_task* h) const noexcept { shmline_task_close(h); }
    void operator()(shmline_pipeline* h) const noexcept { shmline_pipeline_close(h); }
    void operator()(shmline_run* h) const noexcept { shmline_run_close(h); }
};

template <class H>
using OwnedPipelineHandle = std::unique_ptr<H, PipelineCloser>;

/// A Timeout of `ns` nanoseconds, saturating where a u64 count does not fit.
inline Timeout from_nanos(std::uint64_t ns) noexcept {
    const auto most = static_cast<std::uint64_t>(std::numeric_limits<Timeout::rep>::max());
    return Timeout(static_cast<Timeout::rep>(std::min(ns, most)));
}

/// The C++ report of a C run report (its tasks are left to the caller).
inline RunReport to_report(const shmline_run_report& c) {
    RunReport report;
    report.outcome = static_cast<RunOutcome>(c.outcome);
    report.signal = c.signal;
    report.duration = from_nanos(c.duration_ns);
    report.running = from_nanos(c.running_ns);
    report.stream_count = c.stream_count;
    report.task_count = c.task_count;
    report.frames = c.frames;
    report.bytes = c.bytes;
    return report;
}

/// The string `s` names, or "" for NULL.
inline std::string string_of(const char* s) {
    return s != nullptr ? s : "";
}

/// `s` as a C argument meaning "take it from the environment" when empty.
inline const char* or_null(const std::string& s) noexcept {
    return s.empty() ? nullptr : s.c_str();
}

}  // namespace detail

/// This process as one task of a running pipeline: the handle a task program joins with, and
/// takes its readers, writers and events from by the parameter names the pipeline declared.
///
/// ```
/// shmline::Task task = shmline::Task::join();  // names from SHMLINE_PIPELINE, SHMLINE_TASK
/// shmline::Reader input = task.reader("input");
/// shmline::Writer out = task.writer("out");
/// // ... read input until Status::EndOfStream, write out; out's destructor ends the stream ...
/// ```
///
/// The Readers, Writers and Events taken are independent of the Task and may outlive it; those
/// never taken are closed with it (a Writer closing ends its stream, so the tasks downstream
/// finish). The runner sees only the process's exit status: exit 0 when done, non-zero on a
/// failure (an Error escaping main() aborts the process, which the run reports as SIGABRT).
///
/// Threads: reader(), writer(), event() and close() must not run at the same time as any other
/// call on the Task; stop_requested(), wait_stop() and check_inputs() may be called from any
/// number of threads at once (check_inputs() with Readers that no other thread uses meanwhile).
class Task {
  public:
    /// One input of the task, for check_inputs(): a reading parameter's name and its Reader.
    struct Input {
        std::string param;    ///< The reading parameter's name, as given to reader().
        const Reader& reader; ///< The Reader taken for it, still open.
    };

    /// An empty task (false); assign one from join().
    Task() noexcept = default;

    /// Joins the pipeline that started this process, as the task it was started as: the runner
    /// sets both names in the environment (SHMLINE_PIPELINE, SHMLINE_TASK) of every task.
    ///
    /// Attaches a reader for every parameter the task reads, a writer for every stream it
    /// writes and every event it uses, then waits until every task of the pipeline has joined
    /// (at most the pipeline's join timeout, 30 s by default): once it returns, every reader of
    /// every task is attached, so no frame written by any task is lost.
    ///
    /// Throws Error: Status::InvalidArgument (not started by a runner: the variables are not
    /// set; the message says how to start the program), Status::NotFound (the pipeline is not
    /// running or has no such task: the message lists its tasks), Status::WrongState (the task
    /// already joined, or the pipeline is past its start), Status::PipelineFailed (the pipeline
    /// stopped, its runner died, or not every task joined in time), the errors of opening
    /// streams and events (Status::Corrupt...).
    static Task join() { return join_c(nullptr, nullptr); }

    /// Joins task `task` of the running pipeline `pipeline`, as join() does with the names from
    /// the environment; an empty string is taken from the environment too. Throws Error as
    /// join().
    static Task join(const std::string& pipeline, const std::string& task) {
        return join_c(detail::or_null(pipeline), detail::or_null(task));
    }

    /// Whether the task handle is open (joined, and not closed or moved from).
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_task* handle() const noexcept { return handle_.get(); }

    /// Closes the task handle now: the readers, writers and events not taken are closed (each
    /// Writer ends its stream); those taken stay open. The names stay, for check_inputs(). Does
    /// nothing if already closed. Never blocks.
    void close() noexcept { handle_.reset(); }

    /// The task's name (empty for a Task that never joined). Kept after close().
    const std::string& name() const noexcept { return name_; }

    /// The name of the task's pipeline (empty for a Task that never joined). Its streams are the
    /// stream segments `PIPELINE.STREAM`, its events `PIPELINE.EVENT`. Kept after close().
    const std::string& pipeline() const noexcept { return pipeline_; }

    /// Takes the Reader bound to reading parameter `param`; each can be taken once. It was
    /// attached at join(), so it reads every frame of its stream whatever `options.start` says.
    /// From `options`: `wait` applies from now on, `require_schema` is checked (on a mismatch
    /// the reader stays available), `lossy` must be false (a task's readers are lossless: for a
    /// lossy tap open the stream `PIPELINE.STREAM` with Stream::open()), and `group` must be
    /// empty or the reader group the pipeline declared for `param`. Never blocks.
    ///
    /// Throws Error: Status::NotFound (no such reading parameter: the message lists the task's),
    /// Status::WrongState (already taken), Status::SchemaMismatch, Status::Unsupported (`lossy`),
    /// Status::InvalidArgument (another `group`), Status::NullPointer (the Task is closed).
    Reader reader(const std::string& param, const ReaderOptions& options = {}) {
        const shmline_reader_options c = detail::to_c(options);
        shmline_reader* taken = nullptr;
        detail::check(shmline_task_reader(handle_.get(), param.c_str(), &c, &taken));
        return Reader(taken);
    }

    /// Takes the Writer bound to writing parameter `param`; each can be taken once. Its
    /// `options.wait` applies from now on. Destroying the Writer ends the stream (of a stream
    /// several tasks write: when the last of them is done). Never blocks.
    ///
    /// Throws Error: Status::NotFound (no such writing parameter: the message lists the task's),
    /// Status::WrongState (already taken), Status::NullPointer (the Task is closed).
    Writer writer(const std::string& param, const WriterOptions& options = {}) {
        shmline_writer_options c = shmline_writer_options_default();
        c.wait = static_cast<std::uint32_t>(options.wait);
        shmline_writer* taken = nullptr;
        detail::check(shmline_task_writer(handle_.get(), param.c_str(), &c, &taken));
        return Writer(taken);
    }

    /// Takes the Event bound to event parameter `param`; each can be taken once. Never blocks.
    ///
    /// Throws Error: Status::NotFound (no such event parameter: the message lists the task's),
    /// Status::WrongState (already taken), Status::NullPointer (the Task is closed).
    Event event(const std::string& param) {
        shmline_event* taken = nullptr;
        detail::check(shmline_task_event(handle_.get(), param.c_str(), &taken));
        return Event(taken);
    }

    /// Whether the runner has asked the tasks to stop (after another task failed, a signal to
    /// the runner, or Run::stop()). A task that does not spend its time blocked on a stream
    /// checks it regularly and returns from main() with status 0 once it is true; the runner
    /// also sends SIGTERM, then SIGKILL after the grace period. Never blocks. Throws Error:
    /// Status::NullPointer (the Task is closed: keep it open to ask).
    [[nodiscard]] bool stop_requested() const {
        bool requested = false;
        detail::check(shmline_task_stop_requested(handle_.get(), &requested));
        return requested;
    }

    /// Waits up to `timeout` until the runner asks the tasks to stop; true then, false on
    /// timeout (or at once with a zero `timeout`). Sleeps on a futex (no CPU). Throws Error:
    /// Status::NullPointer (the Task is closed).
    [[nodiscard]] bool wait_stop(Timeout timeout = forever) const {
        return detail::check(shmline_task_wait_stop(handle_.get(), detail::nanos(timeout))) ==
               Status::Ok;
    }

    /// For a task with several inputs that stopped because one of them reached its end of stream
    /// (Status::EndOfStream): checks that every input in `inputs` has ended too, so that the task
    /// may exit with status 0. The runner sees only exit statuses: a task that stops at the end of
    /// one input and exits 0 without this check ends "normally", whatever its other inputs still
    /// hold. A task with one input needs no check.
    ///
    /// An input has ended when its stream's writer has ended (closed, or died) and the Reader has
    /// read every frame published; a member of a reader group counts as ended while other
    /// members are attached (they read the rest). Waits up to `timeout` (5 s by default, as the
    /// other languages) for an input that has nothing unread but whose writer has not ended yet
    /// (it may be closing its stream right now); returns at once when an input has frames unread.
    /// Works after close(), and on a Task that never joined (the names are then taken from the
    /// environment).
    ///
    /// ```
    /// task.check_inputs({{"a", a}, {"b", b}});  // throws if "b" still had frames
    /// ```
    ///
    /// Throws Error: Status::WrongState when the task must fail (exit non-zero): the message
    /// names each input that still had frames and how many (`task "merge" ended on end of stream
    /// of "a" while "b" still had 190 frames unread`), and the run's report repeats it after the
    /// task's exit status. Status::NullPointer (a closed Reader), Status::InvalidArgument (names
    /// from the environment that is not set).
    void check_inputs(const std::vector<Input>& inputs,
                      Timeout timeout = std::chrono::seconds(5)) const {
        std::vector<const shmline_reader*> readers;
        std::vector<const char*> params;
        readers.reserve(inputs.size());
        params.reserve(inputs.size());
        for (const Input& input : inputs) {
            readers.push_back(input.reader.handle());
            params.push_back(input.param.c_str());
        }
        detail::check(shmline_task_check_inputs(detail::or_null(pipeline_),
                                                detail::or_null(name_), readers.data(),
                                                params.data(), inputs.size(),
                                                detail::nanos(timeout)));
    }

  private:
    static Task join_c(const char* pipeline_name, const char* task_name) {
        shmline_task* handle = nullptr;
        detail::check(shmline_task_join(pipeline_name, task_name, &handle));
        Task task;
        task.handle_.reset(handle);
        task.name_ = detail::string_of(shmline_task_name(handle));
        task.pipeline_ = detail::string_of(shmline_task_pipeline_name(handle));
        return task;
    }

    detail::OwnedPipelineHandle<shmline_task> handle_;
    std::string name_;
    std::string pipeline_;
};

/// A pipeline started by Pipeline::start(), running in threads of this process: wait for its
/// end, stop it, and read how it ended. Destroying (or closing) a Run that is still going stops
/// it first and blocks until every task is reaped and every segment removed.
///
/// Every call but close() may be made from any number of threads at once (stop() while another
/// thread waits, for example).
class Run {
  public:
    /// An empty run (false); assign one from Pipeline::start().
    Run() noexcept = default;

    /// Whether the run handle is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_run* handle() const noexcept { return handle_.get(); }

    /// Closes the run handle; if the run is still going, stops it first and blocks until every
    /// task has been reaped and every segment removed (at most the stop grace period plus the
    /// time the tasks take to die). Does nothing if already closed.
    void close() noexcept { handle_.reset(); }

    /// Waits up to `timeout` for the run to end. Returns true once it has ended (every task
    /// reaped, every segment removed) with every task exiting 0 or after stop(); false while it
    /// is still running. Once ended, every call returns (or throws) the same.
    ///
    /// Throws PipelineFailed (Status::PipelineFailed) when a task failed, could not start or
    /// never joined: the message names the task and its exit status or signal, report() has
    /// every task's. Throws Error: Status::NullPointer (the Run is closed).
    [[nodiscard]] bool wait(Timeout timeout = forever) const {
        shmline_run_report c{};
        const std::int32_t status = shmline_run_wait(handle_.get(), detail::nanos(timeout), &c);
        if (status == SHMLINE_TIMEOUT) {
            return false;
        }
        if (status == SHMLINE_PIPELINE_FAILED) {
            std::string message = detail::in_cpp_terms(shmline_last_error_message());
            throw PipelineFailed(message, with_tasks(detail::to_report(c)));
        }
        detail::check(status);
        return true;
    }

    /// How the run ended, with every task's report, once it has ended (a failed run's report
    /// too: this does not throw PipelineFailed). Throws Error: Status::WrongState (still
    /// running: wait() first), Status::NullPointer (the Run is closed).
    RunReport report() const {
        shmline_run_report c{};
        const std::int32_t status = shmline_run_wait(handle_.get(), 0, &c);
        if (status == SHMLINE_TIMEOUT) {
            throw Error(Status::WrongState,
                        "the run has not ended yet: wait for it with shmline::Run::wait() first");
        }
        if (status != SHMLINE_PIPELINE_FAILED) {
            detail::check(status);
        }
        return with_tasks(detail::to_report(c));
    }

    /// Asks the pipeline to stop: the stop event is set (Task::stop_requested()), then every task
    /// gets SIGTERM, then SIGKILL after the grace period. Returns at once; wait() waits for the
    /// end, whose outcome is then RunOutcome::Stopped (unless the run had already ended or
    /// failed). Calling it again, or after the end, does nothing. Throws Error:
    /// Status::NullPointer (the Run is closed).
    void stop() const { detail::check(shmline_run_stop(handle_.get())); }

    /// The names (within the pipeline) of its streams, in declaration order; stream `NAME` is the
    /// stream segment `PIPELINE.NAME`. Empty when the Run is closed.
    std::vector<std::string> stream_names() const {
        std::vector<std::string> names;
        for (std::size_t i = 0;; i++) {
            const char* name = shmline_run_stream_name(handle_.get(), i);
            if (name == nullptr) {
                return names;
            }
            names.emplace_back(name);
        }
    }

    /// A snapshot of the shared counters of stream number `index` (declaration order, as
    /// stream_names()): while the run goes (frames and bytes written, writer waits, fill) and
    /// after it has ended (the final counts). StreamStats::readers is empty: open the stream
    /// `PIPELINE.NAME` with Stream::open() while it runs for each reader's. Never blocks for
    /// long. Throws Error: Status::InvalidArgument (`index` out of range), Status::NullPointer.
    StreamStats stream_stats(std::size_t index) const {
        shmline_stream_stats c{};
        detail::check(shmline_run_stream_stats(handle_.get(), index, &c));
        return detail::to_stats(c);
    }

  private:
    friend class Pipeline;

    explicit Run(shmline_run* handle) noexcept : handle_(handle) {}

    /// `report` with the report of each of its tasks (the run has ended).
    RunReport with_tasks(RunReport report) const {
        report.tasks.reserve(report.task_count);
        for (std::size_t i = 0; i < report.task_count; i++) {
            shmline_task_report c{};
            detail::check(shmline_run_task_report(handle_.get(), i, &c));
            TaskReport task;
            task.pid = c.pid;
            task.exit = static_cast<TaskExit>(c.exit_kind);
            task.exit_value = c.exit_value;
            task.stopped = c.stopped;
            task.cpu_time = detail::from_nanos(c.cpu_ns);
            report.tasks.push_back(task);
        }
        return report;
    }

    detail::OwnedPipelineHandle<shmline_run> handle_;
};

/// The declaration of a pipeline: a named set of streams (belts), events (switches) and tasks
/// (programs in any language, started as processes), and which parameter of each task is bound
/// to which stream or event; and the runner that starts them (run(), start()).
///
/// ```
/// shmline::StreamOptions samples;
/// samples.max_frame_size = 64;
/// shmline::Pipeline pipeline("demo");
/// pipeline.add_stream("samples", samples)
///     .add_task("source", {"./source"})
///     .add_task("sink", {"./sink", "--verbose"})
///     .bind("source", shmline::Binding::Write, "out", "samples")
///     .bind("sink", shmline::Binding::Read, "input", "samples");
/// shmline::RunReport report = pipeline.run();  // throws shmline::PipelineFailed if a task fails
/// ```
///
/// The declaring calls (add_*, task_set_*, bind*, set_*) only record the declaration and check
/// their own arguments, each returning the Pipeline so that calls chain; validate() checks how
/// the entries fit together and lists every problem at once, and run(), start() and save()
/// validate first. A Pipeline is used from one thread at a time; a run has its own copy of the
/// declaration, so the Pipeline may be changed or destroyed while it goes.
class Pipeline {
  public:
    /// An empty pipeline (false); assign one from the constructor, load() or parse().
    Pipeline() noexcept = default;

    /// An empty declaration named `name`: the prefix of every segment the pipeline creates
    /// (registry `shmline.pipeline.NAME`, streams and events `NAME.MEMBER`), so two pipelines
    /// running at once need different names. The name is checked by validate().
    explicit Pipeline(const std::string& name) {
        shmline_pipeline* handle = nullptr;
        detail::check(shmline_pipeline_new(name.c_str(), &handle));
        handle_.reset(handle);
    }

    /// Reads the declaration in the TOML manifest at `path` (the format `shmline run` reads and
    /// save() writes; docs/C_API.md). Relative paths in it are taken from the manifest's
    /// directory. Throws Error: Status::InvalidArgument (malformed: the message has the line and
    /// column), Status::NotFound (no such file), Status::PermissionDenied...
    static Pipeline load(const std::string& path) {
        shmline_pipeline* handle = nullptr;
        detail::check(shmline_pipeline_load(path.c_str(), &handle));
        return Pipeline(handle);
    }

    /// Reads the declaration from TOML manifest text, as load() does from a file, except that
    /// relative paths stay relative to the working directory. Throws Error:
    /// Status::InvalidArgument (malformed: the message has the line and column).
    static Pipeline parse(const std::string& toml) {
        shmline_pipeline* handle = nullptr;
        detail::check(shmline_pipeline_parse(toml.c_str(), &handle));
        return Pipeline(handle);
    }

    /// Whether the declaration is open.
    explicit operator bool() const noexcept { return handle_ != nullptr; }

    /// The C handle, for calling the C API directly; still owned by this object.
    shmline_pipeline* handle() const noexcept { return handle_.get(); }

    /// Frees the declaration now (a run started from it goes on). Does nothing if already closed.
    void close() noexcept { handle_.reset(); }

    /// The pipeline's name (empty when closed).
    std::string name() const { return detail::string_of(shmline_pipeline_name(handle_.get())); }

    /// Declares stream `name`, created by the runner as the stream segment `PIPELINE.NAME`. A
    /// stream needs a max_frame_size or a schema. From `options`: capacity, max_frame_size,
    /// checksum, schema, max_readers (0: every reading binding plus 4, at least 8) and
    /// max_writers (0 or 1: one writer per writing task, so a stream several tasks write is a
    /// multi-writer stream; more: the limit). permissions must stay 0600 (the tasks run as the
    /// runner's user); unlink_on_close is ignored (the runner removes every segment at the end).
    /// Throws Error: Status::InvalidArgument (bad schema, other permissions...).
    Pipeline& add_stream(const std::string& name, const StreamOptions& options) {
        const shmline_stream_options c = detail::to_c(options);
        detail::check(shmline_pipeline_add_stream(handle_.get(), name.c_str(), &c));
        return *this;
    }

    /// Declares event `name` (a flag or a counting event), created by the runner as the event
    /// segment `PIPELINE.NAME`. Throws Error: Status::NullPointer (closed).
    Pipeline& add_event(const std::string& name, EventMode mode = EventMode::Flag) {
        detail::check(shmline_pipeline_add_event(handle_.get(), name.c_str(),
                                                 static_cast<std::uint32_t>(mode)));
        return *this;
    }

    /// Declares task `name`, which runs the program `argv[0]` with the arguments that follow:
    /// a path (relative ones from the task's working directory) or a name looked up in PATH.
    /// The runner starts it in its own process group, standard input closed, sharing the
    /// runner's output (see task_set_output()), with SHMLINE_PIPELINE and SHMLINE_TASK in its
    /// environment so that it joins with Task::join(). Bind its parameters with bind().
    /// Throws Error: Status::InvalidArgument (`argv` empty).
    Pipeline& add_task(const std::string& name, const std::vector<std::string>& argv) {
        std::vector<const char*> words;
        words.reserve(argv.size());
        for (const std::string& word : argv) {
            words.push_back(word.c_str());
        }
        detail::check(
            shmline_pipeline_add_task(handle_.get(), name.c_str(), words.data(), words.size()));
        return *this;
    }

    /// Sets the working directory of task `task` (relative to this process's unless absolute);
    /// its relative program path and output files are taken from it. Throws Error:
    /// Status::NotFound (no such task: the message lists the declared ones).
    Pipeline& task_set_cwd(const std::string& task, const std::string& dir) {
        detail::check(shmline_pipeline_task_set_cwd(handle_.get(), task.c_str(), dir.c_str()));
        return *this;
    }

    /// Adds environment variable `key` = `value` for task `task`, on top of the runner's
    /// environment (setting a key twice keeps the last value). Throws Error: Status::NotFound
    /// (no such task), Status::InvalidArgument (an empty key or one with `=`).
    Pipeline& task_set_env(const std::string& task, const std::string& key,
                           const std::string& value) {
        detail::check(shmline_pipeline_task_set_env(handle_.get(), task.c_str(), key.c_str(),
                                                    value.c_str()));
        return *this;
    }

    /// Sends the standard output and error of task `task` to files, appended to and created if
    /// needed (relative to the task's working directory; "/dev/null" silences it). An empty path
    /// keeps the runner's own stream. Throws Error: Status::NotFound (no such task).
    Pipeline& task_set_output(const std::string& task, const std::string& stdout_path,
                              const std::string& stderr_path = "") {
        detail::check(shmline_pipeline_task_set_output(handle_.get(), task.c_str(),
                                                       detail::or_null(stdout_path),
                                                       detail::or_null(stderr_path)));
        return *this;
    }

    /// Binds parameter `param` of task `task` to stream or event `target`: Binding::Read (the
    /// task takes Task::reader(param)), Binding::Write (Task::writer(param); several tasks may
    /// write one stream) or Binding::Event (Task::event(param)). Throws Error:
    /// Status::NotFound (no such task: the message lists the declared ones).
    Pipeline& bind(const std::string& task, Binding kind, const std::string& param,
                   const std::string& target) {
        detail::check(shmline_pipeline_bind(handle_.get(), task.c_str(),
                                            static_cast<std::uint32_t>(kind), param.c_str(),
                                            target.c_str()));
        return *this;
    }

    /// Binds reading parameter `param` of task `task` to stream `stream` as a member of reader
    /// group `group`: the members of a group (usually in several tasks) share its frames, each
    /// frame going to exactly one of them, while plain readers still get every frame. Throws
    /// Error: Status::NotFound (no such task).
    Pipeline& bind_group(const std::string& task, const std::string& param,
                         const std::string& stream, const std::string& group) {
        detail::check(shmline_pipeline_bind_group(handle_.get(), task.c_str(), param.c_str(),
                                                  stream.c_str(), group.c_str()));
        return *this;
    }

    /// Accepts (or, with false, refuses: the default) streams that form a cycle between tasks.
    /// A cycle of lossless streams deadlocks as soon as every ring on it is full.
    Pipeline& set_allow_cycles(bool allow = true) {
        detail::check(shmline_pipeline_set_allow_cycles(handle_.get(), allow ? 1 : 0));
        return *this;
    }

    /// Sets how long the runner waits for every task to join before it fails the run, naming
    /// the tasks that did not (default 30 s). Throws Error: Status::InvalidArgument (negative).
    Pipeline& set_join_timeout(Timeout timeout) {
        detail::check(shmline_pipeline_set_join_timeout(handle_.get(), detail::nanos(timeout)));
        return *this;
    }

    /// Sets how long tasks asked to stop (stop event and SIGTERM) get before SIGKILL (default
    /// 2 s). Throws Error: Status::InvalidArgument (negative).
    Pipeline& set_stop_grace(Timeout grace) {
        detail::check(shmline_pipeline_set_stop_grace(handle_.get(), detail::nanos(grace)));
        return *this;
    }

    /// Checks the declaration as a whole: names valid and unique, every stream written and read
    /// by some task, every binding naming a declared stream or event, no task reading a stream
    /// twice, no cycle unless allowed. Never blocks. Throws Error: Status::InvalidArgument (the
    /// message lists every problem, one per line, named as in a manifest:
    /// `tasks.sink.reads.input: ...`).
    void validate() const { detail::check(shmline_pipeline_validate(handle_.get())); }

    /// Writes the declaration as a TOML manifest to `path` (replacing it), after validating it;
    /// load() and `shmline run` read it back. Throws Error: Status::InvalidArgument (every
    /// problem listed), Status::NotFound (no such directory), Status::PermissionDenied...
    void save(const std::string& path) const {
        detail::check(shmline_pipeline_save(handle_.get(), path.c_str()));
    }

    /// Runs the pipeline to its end, blocking the calling thread: validates it, creates its
    /// streams and events, starts every task, releases them together once all have joined, and
    /// waits for them. A task that exits 0 ends the streams it writes, so the tasks downstream
    /// drain them and finish: a pipeline ends by itself. The first failure stops the other tasks
    /// (stop event, SIGTERM, SIGKILL after the grace period). While it runs, SIGINT (Ctrl-C) and
    /// SIGTERM to this process stop the pipeline the same way instead of killing the process.
    /// Every segment is removed before it returns, whatever happened.
    ///
    /// Returns the report of a run whose tasks all exited 0 (RunReport::tasks is empty: start()
    /// and Run::report() give each task's). Throws PipelineFailed (a task failed, could not
    /// start or never joined, or a signal stopped the run: the message names the task and its
    /// exit status or signal). Throws Error when it could not start: Status::InvalidArgument
    /// (invalid declaration: every problem listed), Status::AlreadyExists (a live process runs a
    /// pipeline of this name), Status::NoSpace, Status::PermissionDenied...
    RunReport run() const {
        shmline_run_report c{};
        const std::int32_t status = shmline_pipeline_run(handle_.get(), &c);
        if (status == SHMLINE_PIPELINE_FAILED) {
            std::string message = detail::in_cpp_terms(shmline_last_error_message());
            throw PipelineFailed(message, detail::to_report(c));
        }
        detail::check(status);
        return detail::to_report(c);
    }

    /// Starts the pipeline from threads of this process and returns at once with its Run (see
    /// run() for what the runner does). Unlike run(), it does not catch SIGINT or SIGTERM: call
    /// Run::stop() to stop cleanly (if a signal kills this process, its tasks die with it and
    /// `shmline clean` or the next run of the same name removes the segments). Throws Error as
    /// run() does when it cannot start; a task's failure comes from Run::wait().
    Run start() const {
        shmline_run* run_handle = nullptr;
        detail::check(shmline_pipeline_start(handle_.get(), &run_handle));
        return Run(run_handle);
    }

  private:
    explicit Pipeline(shmline_pipeline* handle) noexcept : handle_(handle) {}

    detail::OwnedPipelineHandle<shmline_pipeline> handle_;
};

}  // namespace shmline

#endif  // SHMLINE_SHMLINE_HPP
