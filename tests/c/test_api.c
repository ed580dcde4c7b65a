/* Every function of the C API, with its error paths: NULL arguments, handles in the wrong state,
 * invalid options, out-of-range enum values, names that are bad or taken, buffers too small,
 * timeouts, end of stream. Each call under test must return a status and leave a message, never
 * crash; tests/c_abi.rs also runs this program under valgrind.
 *
 * Usage: test_api NAME_PREFIX. Every segment it makes is named NAME_PREFIX-... and removed before
 * it exits. Prints "N passed, N failed" and exits 0 only if every check passed. */
#define _POSIX_C_SOURCE 200809L

#include "check.h"
#include "shmline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *prefix;

/* A segment name unique to this run: PREFIX-TAG-N. */
static const char *unique(const char *tag) {
    static char names[64][160];
    static int n;
    char *name = names[n % 64];
    snprintf(name, sizeof names[0], "%s-%s-%d", prefix, tag, n);
    n++;
    return name;
}

/* A new stream that removes itself when closed. */
static shmline_stream *make_stream(const char *tag, uint32_t capacity, uint32_t max_frame) {
    shmline_stream_options o = shmline_stream_options_default();
    o.capacity = capacity;
    o.max_frame_size = max_frame;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique(tag), &o, &s), SHMLINE_OK);
    return s;
}

static shmline_writer *make_writer(shmline_stream *s) {
    shmline_writer *w = NULL;
    EXPECT(shmline_writer_open(s, NULL, &w), SHMLINE_OK);
    return w;
}

static shmline_reader *make_reader(shmline_stream *s) {
    shmline_reader *r = NULL;
    EXPECT(shmline_reader_open(s, NULL, &r), SHMLINE_OK);
    return r;
}

/* Writes a raw file into /dev/shm, standing in for a segment some other program made. */
static void write_fake_segment(const char *file, const unsigned char *head, size_t head_len,
                               size_t size) {
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s", file);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < size; i++) {
        fputc(i < head_len ? head[i] : 0, f);
    }
    fclose(f);
}

static void test_versions_match_the_header(void) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", SHMLINE_VERSION_MAJOR, SHMLINE_VERSION_MINOR,
             SHMLINE_VERSION_PATCH);
    CHECK(strcmp(shmline_version(), expected) == 0);
    CHECK(shmline_layout_version() == SHMLINE_LAYOUT_VERSION);
}

static void test_every_status_has_a_name_and_a_description(void) {
    static const struct {
        int32_t status;
        const char *name;
    } all[] = {
        {SHMLINE_OK, "OK"},
        {SHMLINE_FULL, "FULL"},
        {SHMLINE_EMPTY, "EMPTY"},
        {SHMLINE_TIMEOUT, "TIMEOUT"},
        {SHMLINE_END_OF_STREAM, "END_OF_STREAM"},
        {SHMLINE_WRITER_DEAD, "WRITER_DEAD"},
        {SHMLINE_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
        {SHMLINE_NULL_POINTER, "NULL_POINTER"},
        {SHMLINE_INVALID_NAME, "INVALID_NAME"},
        {SHMLINE_NOT_FOUND, "NOT_FOUND"},
        {SHMLINE_ALREADY_EXISTS, "ALREADY_EXISTS"},
        {SHMLINE_PERMISSION_DENIED, "PERMISSION_DENIED"},
        {SHMLINE_NOT_SHMLINE, "NOT_SHMLINE"},
        {SHMLINE_VERSION_MISMATCH, "VERSION_MISMATCH"},
        {SHMLINE_CORRUPT, "CORRUPT"},
        {SHMLINE_SCHEMA_MISMATCH, "SCHEMA_MISMATCH"},
        {SHMLINE_WRITER_EXISTS, "WRITER_EXISTS"},
        {SHMLINE_TOO_MANY_READERS, "TOO_MANY_READERS"},
        {SHMLINE_FRAME_TOO_LARGE, "FRAME_TOO_LARGE"},
        {SHMLINE_BUFFER_TOO_SMALL, "BUFFER_TOO_SMALL"},
        {SHMLINE_WRONG_STATE, "WRONG_STATE"},
        {SHMLINE_NO_SPACE, "NO_SPACE"},
        {SHMLINE_OS_ERROR, "OS_ERROR"},
        {SHMLINE_PANIC, "PANIC"},
        {SHMLINE_UNSUPPORTED, "UNSUPPORTED"},
        {SHMLINE_PIPELINE_FAILED, "PIPELINE_FAILED"},
        {SHMLINE_TOO_MANY_WRITERS, "TOO_MANY_WRITERS"},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(strcmp(shmline_status_str(all[i].status), all[i].name) == 0);
        CHECK(strcmp(shmline_status_describe(all[i].status), "unknown status") != 0);
    }
    CHECK(strcmp(shmline_status_str(6), "UNKNOWN") == 0);
    CHECK(strcmp(shmline_status_str(-22), "UNKNOWN") == 0);
    CHECK(strcmp(shmline_status_str(INT32_MIN), "UNKNOWN") == 0);
    CHECK(strcmp(shmline_status_describe(INT32_MAX), "unknown status") == 0);
}

static void test_the_last_error_message_is_per_call_and_kept_across_successes(void) {
    CHECK(strcmp(shmline_last_error_message(), "") == 0);
    EXPECT(shmline_stream_unlink(NULL), SHMLINE_NULL_POINTER);
    EXPECT_MESSAGE("name");
    EXPECT(shmline_stream_unlink("no such stream"), SHMLINE_INVALID_NAME);
    EXPECT_MESSAGE("no such stream");
    shmline_stream_info info;
    shmline_stream *s = make_stream("message", 4, 16);
    EXPECT(shmline_stream_get_info(s, &info), SHMLINE_OK);
    EXPECT_MESSAGE("no such stream");
    shmline_stream_close(s);
}

static void test_options_defaults_set_struct_size_and_the_documented_values(void) {
    shmline_stream_options so = shmline_stream_options_default();
    CHECK(so.struct_size == sizeof so);
    CHECK(so.capacity == 64 && so.max_frame_size == 0 && so.max_readers == 8);
    CHECK(so.permissions == 0600 && so.checksum == 0 && so.unlink_on_close == 0);
    CHECK(so.dtype == NULL && so.ndim == 0 && so.shape == NULL);
    CHECK(so.max_writers == 1 && so.max_groups == 4);
    shmline_writer_options wo = shmline_writer_options_default();
    CHECK(wo.struct_size == sizeof wo && wo.wait == SHMLINE_WAIT_ADAPTIVE);
    shmline_reader_options ro = shmline_reader_options_default();
    CHECK(ro.struct_size == sizeof ro && ro.start == SHMLINE_START_NEXT);
    CHECK(ro.wait == SHMLINE_WAIT_ADAPTIVE && ro.lossy == 0);
    CHECK(ro.require_dtype == NULL && ro.require_ndim == 0 && ro.require_shape == NULL);
    CHECK(ro.group == NULL);
    shmline_event_options eo = shmline_event_options_default();
    CHECK(eo.struct_size == sizeof eo && eo.mode == SHMLINE_EVENT_FLAG);
    CHECK(eo.permissions == 0600 && eo.unlink_on_close == 0);
}

static void test_stream_create_refuses_bad_arguments_with_a_status(void) {
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = 64;
    o.unlink_on_close = 1;
    shmline_stream *s = (shmline_stream *)&o; /* must be overwritten with NULL on failure */
    EXPECT(shmline_stream_create(NULL, &o, &s), SHMLINE_NULL_POINTER);
    CHECK(s == NULL);
    EXPECT(shmline_stream_create(unique("null-out"), &o, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_create("", &o, &s), SHMLINE_INVALID_NAME);
    EXPECT(shmline_stream_create("a/b", &o, &s), SHMLINE_INVALID_NAME);
    EXPECT(shmline_stream_create(".hidden", &o, &s), SHMLINE_INVALID_NAME);
    char long_name[260];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    EXPECT(shmline_stream_create(long_name, &o, &s), SHMLINE_INVALID_NAME);
    EXPECT(shmline_stream_create("caf\xc3", &o, &s), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("UTF-8");
    /* The defaults have no frame size and no schema. */
    EXPECT(shmline_stream_create(unique("no-size"), NULL, &s), SHMLINE_INVALID_ARGUMENT);
    shmline_stream_options bad = o;
    bad.capacity = 3;
    EXPECT(shmline_stream_create(unique("capacity"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad = o;
    bad.capacity = 0;
    EXPECT(shmline_stream_create(unique("capacity0"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad = o;
    bad.max_readers = 0;
    EXPECT(shmline_stream_create(unique("readers0"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad = o;
    bad.max_frame_size = 0x7fffffff;
    EXPECT(shmline_stream_create(unique("huge"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad = o;
    bad.permissions = 0400;
    EXPECT(shmline_stream_create(unique("perm"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad = o;
    bad.permissions = 07777;
    EXPECT(shmline_stream_create(unique("perm2"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    /* struct_size: uninitialised, older than any version, or absurd. */
    bad = o;
    bad.struct_size = 0;
    EXPECT(shmline_stream_create(unique("size0"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("shmline_stream_options_default");
    bad.struct_size = 8;
    EXPECT(shmline_stream_create(unique("size8"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    bad.struct_size = 0xdeadbeef;
    EXPECT(shmline_stream_create(unique("sizebig"), &bad, &s), SHMLINE_INVALID_ARGUMENT);
    CHECK(s == NULL);
}

/* A caller compiled against a later header passes a longer struct; the fields this library
 * knows are read and the rest ignored. */
static void test_stream_create_accepts_a_longer_options_struct_from_a_newer_header(void) {
    struct {
        shmline_stream_options known;
        uint64_t appended_later;
    } newer;
    newer.known = shmline_stream_options_default();
    newer.known.struct_size = sizeof newer;
    newer.known.max_frame_size = 32;
    newer.known.unlink_on_close = 1;
    newer.appended_later = 12345;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique("newer"), &newer.known, &s), SHMLINE_OK);
    shmline_stream_info info;
    EXPECT(shmline_stream_get_info(s, &info), SHMLINE_OK);
    CHECK(info.max_frame_size == 32);
    shmline_stream_close(s);
}

static void test_stream_create_open_info_name_and_unlink(void) {
    const char *name = unique("lifecycle");
    shmline_stream_options o = shmline_stream_options_default();
    o.capacity = 16;
    o.max_frame_size = 100;
    o.max_readers = 3;
    o.checksum = 1;
    shmline_stream *created = NULL, *opened = NULL, *again = NULL;
    EXPECT(shmline_stream_create(name, &o, &created), SHMLINE_OK);
    CHECK(created != NULL);
    EXPECT(shmline_stream_create(name, &o, &again), SHMLINE_ALREADY_EXISTS);
    CHECK(again == NULL);
    EXPECT(shmline_stream_open(name, &opened), SHMLINE_OK);
    CHECK(strcmp(shmline_stream_name(opened), name) == 0);
    CHECK(shmline_stream_name(NULL) == NULL);
    shmline_stream_info info;
    EXPECT(shmline_stream_get_info(opened, &info), SHMLINE_OK);
    CHECK(info.capacity == 16 && info.max_frame_size == 100 && info.max_readers == 3);
    CHECK(info.checksum && !info.has_schema);
    CHECK(info.slot_size >= 100 && info.segment_size > 16u * info.slot_size);
    CHECK(info.creator_pid > 0 && info.creator_start_time > 0);
    EXPECT(shmline_stream_get_info(NULL, &info), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_info(opened, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_open(NULL, &again), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_open(name, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_open("bad/name", &again), SHMLINE_INVALID_NAME);
    EXPECT(shmline_stream_open(unique("missing"), &again), SHMLINE_NOT_FOUND);
    CHECK(again == NULL);
    EXPECT(shmline_stream_unlink(name), SHMLINE_OK);
    EXPECT(shmline_stream_unlink(name), SHMLINE_NOT_FOUND);
    EXPECT(shmline_stream_open(name, &again), SHMLINE_NOT_FOUND);
    /* Open handles keep working after the name is gone. */
    EXPECT(shmline_stream_get_info(created, &info), SHMLINE_OK);
    shmline_stream_close(opened);
    shmline_stream_close(created);
    shmline_stream_close(NULL);
}

static void test_stream_open_refuses_segments_that_are_not_shmline_streams(void) {
    const char *name = unique("fake");
    char file[200];
    snprintf(file, sizeof file, "shmline.stream.%s", name);
    shmline_stream *s = NULL;
    write_fake_segment(file, (const unsigned char *)"NOTSHMLN", 8, 4096);
    EXPECT(shmline_stream_open(name, &s), SHMLINE_NOT_SHMLINE);
    static const unsigned char future[12] = {'S', 'H', 'M', 'L', 'S', 'T', 'R', 'M', 99, 0, 0, 0};
    write_fake_segment(file, future, sizeof future, 4096);
    EXPECT(shmline_stream_open(name, &s), SHMLINE_VERSION_MISMATCH);
    EXPECT_MESSAGE("version 99");
    /* Layout version 1 came before reader groups: refused, not misread. */
    static const unsigned char past[12] = {'S', 'H', 'M', 'L', 'S', 'T', 'R', 'M', 1, 0, 0, 0};
    write_fake_segment(file, past, sizeof past, 4096);
    EXPECT(shmline_stream_open(name, &s), SHMLINE_VERSION_MISMATCH);
    EXPECT_MESSAGE("version 1");
    static const unsigned char damaged[12] = {
        'S', 'H', 'M', 'L', 'S', 'T', 'R', 'M', SHMLINE_LAYOUT_VERSION, 0, 0, 0};
    write_fake_segment(file, damaged, sizeof damaged, 4096);
    EXPECT(shmline_stream_open(name, &s), SHMLINE_CORRUPT);
    CHECK(s == NULL);
    EXPECT(shmline_stream_unlink(name), SHMLINE_OK);
}

static void test_stream_schemas_are_validated_stored_and_required(void) {
    const uint64_t shape[2] = {2, 3};
    shmline_stream_options o = shmline_stream_options_default();
    o.unlink_on_close = 1;
    o.dtype = "f4";
    o.ndim = 2;
    o.shape = shape;
    shmline_stream *s = NULL, *bad_stream = NULL;
    EXPECT(shmline_stream_create(unique("schema"), &o, &s), SHMLINE_OK);
    shmline_stream_info info;
    EXPECT(shmline_stream_get_info(s, &info), SHMLINE_OK);
    CHECK(info.has_schema && info.max_frame_size == 24);

    char dtype[SHMLINE_DTYPE_LEN];
    uint64_t dims[SHMLINE_MAX_NDIM];
    uint32_t ndim = 99;
    EXPECT(shmline_stream_get_schema(s, dtype, sizeof dtype, dims, SHMLINE_MAX_NDIM, &ndim),
           SHMLINE_OK);
    CHECK(strcmp(dtype, "<f4") == 0 && ndim == 2 && dims[0] == 2 && dims[1] == 3);
    EXPECT(shmline_stream_get_schema(s, dtype, 3, dims, SHMLINE_MAX_NDIM, &ndim),
           SHMLINE_BUFFER_TOO_SMALL);
    EXPECT(shmline_stream_get_schema(s, dtype, sizeof dtype, dims, 1, &ndim),
           SHMLINE_BUFFER_TOO_SMALL);
    EXPECT(shmline_stream_get_schema(s, dtype, sizeof dtype, NULL, 1, &ndim), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_schema(s, NULL, sizeof dtype, dims, 8, &ndim), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_schema(s, dtype, sizeof dtype, dims, 8, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_schema(NULL, dtype, sizeof dtype, dims, 8, &ndim),
           SHMLINE_NULL_POINTER);

    /* Readers may require the schema. */
    shmline_reader_options ro = shmline_reader_options_default();
    ro.require_dtype = "<f4";
    ro.require_ndim = 2;
    ro.require_shape = shape;
    shmline_reader *r = NULL;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_OK);
    shmline_reader_close(r);
    const uint64_t other_shape[2] = {3, 2};
    ro.require_shape = other_shape;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_SCHEMA_MISMATCH);
    CHECK(r == NULL);
    ro.require_shape = NULL;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_NULL_POINTER);
    ro.require_ndim = 9;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_INVALID_ARGUMENT);
    ro.require_dtype = NULL;
    ro.require_ndim = 1;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_INVALID_ARGUMENT);
    shmline_stream_close(s);

    /* A stream without a schema: empty dtype, no dimensions; requiring one is a mismatch. */
    s = make_stream("no-schema", 4, 16);
    EXPECT(shmline_stream_get_schema(s, dtype, 1, NULL, 0, &ndim), SHMLINE_OK);
    CHECK(dtype[0] == '\0' && ndim == 0);
    ro = shmline_reader_options_default();
    ro.require_dtype = "|u1";
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_SCHEMA_MISMATCH);
    shmline_stream_close(s);

    /* A scalar schema: a dtype with no dimensions. */
    o.dtype = "<c16";
    o.ndim = 0;
    o.shape = NULL;
    EXPECT(shmline_stream_create(unique("scalar"), &o, &s), SHMLINE_OK);
    EXPECT(shmline_stream_get_info(s, &info), SHMLINE_OK);
    CHECK(info.max_frame_size == 16);
    shmline_stream_close(s);

    /* Bad schemas. */
    o.dtype = "<q4";
    EXPECT(shmline_stream_create(unique("bad-dtype"), &o, &bad_stream), SHMLINE_INVALID_ARGUMENT);
    o.dtype = "<f4";
    o.ndim = 9;
    o.shape = shape;
    EXPECT(shmline_stream_create(unique("bad-ndim"), &o, &bad_stream), SHMLINE_INVALID_ARGUMENT);
    o.ndim = 2;
    o.shape = NULL;
    EXPECT(shmline_stream_create(unique("no-shape"), &o, &bad_stream), SHMLINE_NULL_POINTER);
    const uint64_t zero[2] = {2, 0};
    o.shape = zero;
    EXPECT(shmline_stream_create(unique("zero-dim"), &o, &bad_stream), SHMLINE_INVALID_ARGUMENT);
    o.dtype = NULL;
    o.shape = shape;
    EXPECT(shmline_stream_create(unique("shape-only"), &o, &bad_stream),
           SHMLINE_INVALID_ARGUMENT);
    o.dtype = "<f4";
    o.max_frame_size = 8; /* smaller than the schema's 24 bytes */
    EXPECT(shmline_stream_create(unique("too-small"), &o, &bad_stream), SHMLINE_INVALID_ARGUMENT);
    CHECK(bad_stream == NULL);
}

static void test_writer_open_enforces_one_writer_and_valid_options(void) {
    shmline_stream *s = make_stream("writer-open", 4, 16);
    shmline_writer *w = NULL, *second = NULL;
    shmline_writer_options wo = shmline_writer_options_default();
    EXPECT(shmline_writer_open(NULL, &wo, &w), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_open(s, &wo, NULL), SHMLINE_NULL_POINTER);
    wo.wait = 3;
    EXPECT(shmline_writer_open(s, &wo, &w), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("wait strategy");
    wo.wait = 0xffffffffu;
    EXPECT(shmline_writer_open(s, &wo, &w), SHMLINE_INVALID_ARGUMENT);
    wo = shmline_writer_options_default();
    wo.struct_size = 2;
    EXPECT(shmline_writer_open(s, &wo, &w), SHMLINE_INVALID_ARGUMENT);
    CHECK(w == NULL);
    wo = shmline_writer_options_default();
    wo.wait = SHMLINE_WAIT_BLOCK;
    EXPECT(shmline_writer_open(s, &wo, &w), SHMLINE_OK);
    EXPECT(shmline_writer_open(s, NULL, &second), SHMLINE_WRITER_EXISTS);
    CHECK(second == NULL);
    shmline_writer_close(w);
    /* After end of stream no writer can attach again. */
    EXPECT(shmline_writer_open(s, NULL, &second), SHMLINE_WRONG_STATE);
    shmline_writer_close(NULL);
    shmline_stream_close(s);
}

static void test_writes_check_their_arguments_and_report_full_and_timeout(void) {
    shmline_stream *s = make_stream("write", 4, 16);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    const char data[17] = "0123456789abcdef";
    EXPECT(shmline_writer_write(NULL, data, 4, 0, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_write(w, NULL, 4, 0, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_try_write(NULL, data, 4, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_write(w, data, 17, 0, 0), SHMLINE_FRAME_TOO_LARGE);
    EXPECT_MESSAGE("17 bytes");
    EXPECT(shmline_writer_write(w, NULL, 0, 0, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, data, 16, 7, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    EXPECT(shmline_writer_try_write(w, data, 1, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, data, 2, 0, 1000000), SHMLINE_OK);
    EXPECT(shmline_writer_try_write(w, data, 3, 0), SHMLINE_FULL);
    EXPECT(shmline_writer_write(w, data, 3, 0, 0), SHMLINE_FULL);
    EXPECT(shmline_writer_write(w, data, 3, 0, 1000000), SHMLINE_TIMEOUT);
    uint64_t position = 99;
    EXPECT(shmline_writer_position(w, &position), SHMLINE_OK);
    CHECK(position == 4);
    EXPECT(shmline_writer_position(NULL, &position), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_position(w, NULL), SHMLINE_NULL_POINTER);

    char buf[16];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, NULL, 0, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.len == 0);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 1 && info.len == 16 && info.flags == 7 && memcmp(buf, data, 16) == 0);
    CHECK(info.timestamp_ns > 0 && info.missed == 0);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_reserve_commit_and_abort_follow_the_reservation_state(void) {
    shmline_stream *s = make_stream("reserve", 2, 32);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    void *slot = (void *)&slot;
    size_t capacity = 99;
    EXPECT(shmline_writer_commit(w, 1, 0), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("reserve");
    EXPECT(shmline_writer_abort(w), SHMLINE_WRONG_STATE);
    EXPECT(shmline_writer_commit(NULL, 1, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_abort(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_reserve(NULL, 0, &slot, &capacity), SHMLINE_NULL_POINTER);
    CHECK(slot == NULL && capacity == 0);
    EXPECT(shmline_writer_reserve(w, 0, NULL, &capacity), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_reserve(w, 0, &slot, NULL), SHMLINE_NULL_POINTER);

    EXPECT(shmline_writer_reserve(w, SHMLINE_TIMEOUT_INFINITE, &slot, &capacity), SHMLINE_OK);
    CHECK(slot != NULL && capacity == 32);
    if (slot != NULL) {
        memset(slot, 'a', capacity);
    }
    void *second = NULL;
    EXPECT(shmline_writer_reserve(w, 0, &second, &capacity), SHMLINE_WRONG_STATE);
    EXPECT(shmline_writer_write(w, "x", 1, 0, 0), SHMLINE_WRONG_STATE);
    size_t written = 9;
    size_t one = 1;
    EXPECT(shmline_writer_write_batch(w, "x", &one, 1, 0, 0, &written), SHMLINE_WRONG_STATE);
    EXPECT(shmline_writer_commit(w, 33, 0), SHMLINE_FRAME_TOO_LARGE);
    /* Still reserved after a refused commit. */
    EXPECT(shmline_writer_commit(w, 32, 5), SHMLINE_OK);
    EXPECT(shmline_writer_commit(w, 32, 5), SHMLINE_WRONG_STATE);

    EXPECT(shmline_writer_reserve(w, 0, &slot, &capacity), SHMLINE_OK);
    if (slot != NULL) {
        memset(slot, 'b', capacity);
    }
    EXPECT(shmline_writer_abort(w), SHMLINE_OK);
    EXPECT(shmline_writer_abort(w), SHMLINE_WRONG_STATE);
    EXPECT(shmline_writer_write(w, "c", 1, 0, 0), SHMLINE_OK);
    /* The ring (capacity 2) is full: reserve reports it like write does. */
    EXPECT(shmline_writer_reserve(w, 0, &slot, &capacity), SHMLINE_FULL);
    CHECK(slot == NULL && capacity == 0);
    EXPECT(shmline_writer_reserve(w, 1000000, &slot, &capacity), SHMLINE_TIMEOUT);

    /* The reader sees the committed frame, not the aborted one. */
    char buf[32];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.len == 32 && info.flags == 5 && buf[0] == 'a' && buf[31] == 'a');
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 1 && info.len == 1 && buf[0] == 'c');
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_EMPTY);

    /* Closing with a slot reserved publishes nothing and ends the stream. */
    EXPECT(shmline_writer_reserve(w, 0, &slot, &capacity), SHMLINE_OK);
    shmline_writer_close(w);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_END_OF_STREAM);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static void test_batch_writes_check_every_frame_and_report_partial_progress(void) {
    shmline_stream *s = make_stream("batch-write", 4, 8);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    const char data[] = "aabbbcdddd";
    size_t lens[4] = {2, 3, 1, 4};
    size_t written = 99;
    EXPECT(shmline_writer_write_batch(NULL, data, lens, 4, 0, 0, &written), SHMLINE_NULL_POINTER);
    CHECK(written == 0);
    EXPECT(shmline_writer_write_batch(w, data, lens, 4, 0, 0, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_write_batch(w, data, NULL, 4, 0, 0, &written), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_write_batch(w, NULL, lens, 4, 0, 0, &written), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_write_batch(w, NULL, NULL, 0, 0, 0, &written), SHMLINE_OK);
    CHECK(written == 0);
    size_t overflow[2] = {SIZE_MAX, 2};
    EXPECT(shmline_writer_write_batch(w, data, overflow, 2, 0, 0, &written),
           SHMLINE_INVALID_ARGUMENT);
    size_t too_large[2] = {1, 9};
    char big[10] = {0};
    EXPECT(shmline_writer_write_batch(w, big, too_large, 2, 0, 0, &written),
           SHMLINE_FRAME_TOO_LARGE);
    CHECK(written == 0);

    EXPECT(shmline_writer_write_batch(w, data, lens, 4, 3, SHMLINE_TIMEOUT_INFINITE, &written),
           SHMLINE_OK);
    CHECK(written == 4);
    char buf[64];
    shmline_frame_info infos[8];
    size_t count = 0;
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 8, 0, &count), SHMLINE_OK);
    CHECK(count == 4 && memcmp(buf, data, 10) == 0);
    for (size_t i = 0; i < count && i < 4; i++) {
        CHECK(infos[i].seq == i && infos[i].len == lens[i] && infos[i].flags == 3);
    }

    /* Six frames into a ring of four: four fit now, then the batch stops without waiting. */
    const char six[] = "123456";
    size_t ones[6] = {1, 1, 1, 1, 1, 1};
    EXPECT(shmline_writer_write_batch(w, six, ones, 6, 0, 0, &written), SHMLINE_OK);
    CHECK(written == 4);
    EXPECT(shmline_writer_write_batch(w, six + 4, ones, 2, 0, 0, &written), SHMLINE_FULL);
    CHECK(written == 0);
    EXPECT(shmline_writer_write_batch(w, six + 4, ones, 2, 0, 1000000, &written),
           SHMLINE_TIMEOUT);
    CHECK(written == 0);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_wait_for_readers_counts_attached_readers(void) {
    shmline_stream *s = make_stream("wait-readers", 4, 8);
    shmline_writer *w = make_writer(s);
    EXPECT(shmline_writer_wait_for_readers(NULL, 1, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_writer_wait_for_readers(w, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_wait_for_readers(w, 1, 0), SHMLINE_TIMEOUT);
    shmline_reader *r = make_reader(s);
    EXPECT(shmline_writer_wait_for_readers(w, 1, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    EXPECT(shmline_writer_wait_for_readers(w, 2, 2000000), SHMLINE_TIMEOUT);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_reader_open_checks_options_and_reader_slots(void) {
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = 8;
    o.max_readers = 2;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique("reader-open"), &o, &s), SHMLINE_OK);
    shmline_reader *r = NULL, *r2 = NULL, *r3 = NULL;
    shmline_reader_options ro = shmline_reader_options_default();
    EXPECT(shmline_reader_open(NULL, &ro, &r), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_open(s, &ro, NULL), SHMLINE_NULL_POINTER);
    ro.start = 3;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("start position");
    ro = shmline_reader_options_default();
    ro.wait = 7;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_INVALID_ARGUMENT);
    ro = shmline_reader_options_default();
    ro.struct_size = 0;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_INVALID_ARGUMENT);
    CHECK(r == NULL);
    EXPECT(shmline_reader_open(s, NULL, &r), SHMLINE_OK);
    EXPECT(shmline_reader_open(s, NULL, &r2), SHMLINE_OK);
    EXPECT(shmline_reader_open(s, NULL, &r3), SHMLINE_TOO_MANY_READERS);
    CHECK(r3 == NULL);
    shmline_reader_close(r2);
    EXPECT(shmline_reader_open(s, NULL, &r3), SHMLINE_OK);
    shmline_reader_close(r3);
    shmline_reader_close(r);
    shmline_reader_close(NULL);
    shmline_stream_close(s);
}

static void test_reads_check_their_arguments_and_leave_a_frame_that_does_not_fit(void) {
    shmline_stream *s = make_stream("read", 4, 16);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    char buf[16];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_EMPTY);
    EXPECT(shmline_reader_try_read(r, buf, sizeof buf, &info), SHMLINE_EMPTY);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 1000000, &info), SHMLINE_TIMEOUT);
    EXPECT(shmline_reader_read(NULL, buf, sizeof buf, 0, &info), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_try_read(NULL, buf, sizeof buf, &info), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_read(r, NULL, sizeof buf, 0, &info), SHMLINE_NULL_POINTER);

    EXPECT(shmline_writer_write(w, "hello, world", 12, 0, 0), SHMLINE_OK);
    EXPECT(shmline_reader_read(r, buf, 5, 0, &info), SHMLINE_BUFFER_TOO_SMALL);
    CHECK(info.len == 12);
    EXPECT_MESSAGE("not consumed");
    EXPECT(shmline_reader_read(r, NULL, 0, 0, &info), SHMLINE_BUFFER_TOO_SMALL);
    EXPECT(shmline_reader_try_read(r, buf, 12, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.len == 12 && memcmp(buf, "hello, world", 12) == 0);
    uint64_t position = 0;
    EXPECT(shmline_reader_position(r, &position), SHMLINE_OK);
    CHECK(position == 1);
    EXPECT(shmline_reader_position(NULL, &position), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_position(r, NULL), SHMLINE_NULL_POINTER);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_acquire_and_release_follow_the_lending_state(void) {
    shmline_stream *s = make_stream("acquire", 2, 16);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    const void *data = (const void *)&data;
    shmline_frame_info info;
    EXPECT(shmline_reader_release(r), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("acquire");
    EXPECT(shmline_reader_release(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_acquire(NULL, 0, &data, &info), SHMLINE_NULL_POINTER);
    CHECK(data == NULL);
    EXPECT(shmline_reader_acquire(r, 0, NULL, &info), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_acquire(r, 0, &data, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_EMPTY);
    EXPECT(shmline_reader_acquire(r, 1000000, &data, &info), SHMLINE_TIMEOUT);

    EXPECT(shmline_writer_write(w, "one", 3, 1, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "two", 3, 2, 0), SHMLINE_OK);
    EXPECT(shmline_reader_acquire(r, SHMLINE_TIMEOUT_INFINITE, &data, &info), SHMLINE_OK);
    CHECK(data != NULL && info.seq == 0 && info.len == 3 && info.flags == 1);
    CHECK(data != NULL && memcmp(data, "one", 3) == 0);
    /* While a frame is lent, the writer cannot reuse its slot (ring of 2 is full)... */
    EXPECT(shmline_writer_write(w, "three", 5, 0, 0), SHMLINE_FULL);
    /* ...and the reader must release before anything else. */
    const void *again = NULL;
    char buf[16];
    size_t count = 0;
    EXPECT(shmline_reader_acquire(r, 0, &again, &info), SHMLINE_WRONG_STATE);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_WRONG_STATE);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, &info, 1, 0, &count),
           SHMLINE_WRONG_STATE);
    EXPECT(shmline_reader_release(r), SHMLINE_OK);
    EXPECT(shmline_reader_release(r), SHMLINE_WRONG_STATE);
    EXPECT(shmline_writer_write(w, "three", 5, 0, 0), SHMLINE_OK);
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_OK);
    CHECK(data != NULL && info.seq == 1 && memcmp(data, "two", 3) == 0);
    /* Closing a reader that holds a frame releases it. */
    shmline_reader_close(r);
    EXPECT(shmline_writer_write(w, "four", 4, 0, 0), SHMLINE_OK);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_batch_reads_pack_frames_and_stop_at_one_that_does_not_fit(void) {
    shmline_stream *s = make_stream("batch-read", 8, 16);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    char buf[64];
    shmline_frame_info infos[4];
    size_t count = 99;
    EXPECT(shmline_reader_read_batch(NULL, buf, sizeof buf, infos, 4, 0, &count),
           SHMLINE_NULL_POINTER);
    CHECK(count == 0);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 4, 0, NULL),
           SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, NULL, 4, 0, &count),
           SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 0, 0, &count),
           SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 4, 0, &count), SHMLINE_EMPTY);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 4, 1000000, &count),
           SHMLINE_TIMEOUT);

    EXPECT(shmline_writer_write(w, "0123456789", 10, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "abcdef", 6, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "XYZ", 3, 0, 0), SHMLINE_OK);
    EXPECT(shmline_reader_read_batch(r, buf, 4, infos, 4, 0, &count), SHMLINE_BUFFER_TOO_SMALL);
    CHECK(count == 0 && infos[0].len == 10);
    /* 12 bytes hold the first frame but not the second: the batch stops there. */
    EXPECT(shmline_reader_read_batch(r, buf, 12, infos, 4, 0, &count), SHMLINE_OK);
    CHECK(count == 1 && infos[0].seq == 0 && memcmp(buf, "0123456789", 10) == 0);
    /* max_frames limits the batch. */
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 1, 0, &count), SHMLINE_OK);
    CHECK(count == 1 && infos[0].seq == 1 && infos[0].len == 6);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 4, 0, &count), SHMLINE_OK);
    CHECK(count == 1 && infos[0].seq == 2 && memcmp(buf, "XYZ", 3) == 0);
    shmline_writer_close(w);
    EXPECT(shmline_reader_read_batch(r, buf, sizeof buf, infos, 4, 0, &count),
           SHMLINE_END_OF_STREAM);
    CHECK(count == 0);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static void test_readers_drain_then_see_end_of_stream_for_ever(void) {
    shmline_stream *s = make_stream("eos", 4, 8);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    EXPECT(shmline_writer_write(w, "a", 1, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "b", 1, 0, 0), SHMLINE_OK);
    shmline_writer_close(w);
    char buf[8];
    shmline_frame_info info;
    const void *data = NULL;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && buf[0] == 'a');
    EXPECT(shmline_reader_acquire(r, SHMLINE_TIMEOUT_INFINITE, &data, &info), SHMLINE_OK);
    CHECK(info.seq == 1);
    EXPECT(shmline_reader_release(r), SHMLINE_OK);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info),
           SHMLINE_END_OF_STREAM);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_END_OF_STREAM);
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_END_OF_STREAM);
    CHECK(data == NULL);
    /* A reader opened after the end sees it at once. */
    shmline_reader *late = make_reader(s);
    EXPECT(shmline_reader_read(late, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info),
           SHMLINE_END_OF_STREAM);
    shmline_reader_close(late);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static void test_readers_see_writer_dead_when_the_writer_process_exits_without_closing(void) {
    shmline_stream *s = make_stream("dead", 4, 8);
    shmline_reader *r = make_reader(s);
    pid_t child = fork();
    if (child == 0) {
        /* The writer process: one frame, then gone without shmline_writer_close(). */
        shmline_writer *w = NULL;
        int ok = shmline_writer_open(s, NULL, &w) == SHMLINE_OK &&
                 shmline_writer_write(w, "last", 4, 0, 0) == SHMLINE_OK;
        _exit(ok ? 0 : 1);
    }
    CHECK(child > 0);
    int status = -1;
    /* Reaped, so that its pid no longer names a live (or zombie) process. */
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char buf[8];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(info.len == 4 && memcmp(buf, "last", 4) == 0);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info),
           SHMLINE_WRITER_DEAD);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_WRITER_DEAD);
    shmline_stream_stats stats;
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.writer_state == SHMLINE_WRITER_STATE_DEAD && stats.writer_pid == (uint32_t)child);
    shmline_writer *w = NULL;
    EXPECT(shmline_writer_open(s, NULL, &w), SHMLINE_WRITER_EXISTS);
    EXPECT_MESSAGE("died");
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static double monotonic_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_a_writer_waiting_in_50_ms_slices_gets_past_a_reader_killed_with_sigkill(void) {
    shmline_stream *s = make_stream("rkill", 4, 8);
    shmline_writer *w = make_writer(s);
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t child = fork();
    if (child == 0) {
        /* A lossless reader that never reads, until it is killed. */
        shmline_reader *r = NULL;
        if (shmline_reader_open(s, NULL, &r) != SHMLINE_OK || write(ready[1], "r", 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    CHECK(child > 0);
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    for (int i = 0; i < 4; i++) {
        EXPECT(shmline_writer_write(w, "12345678", 8, 0, 0), SHMLINE_OK);
    }
    EXPECT(shmline_writer_write(w, "12345678", 8, 0, 0), SHMLINE_FULL);
    int status = -1;
    CHECK(kill(child, SIGKILL) == 0 && waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* As the Python binding waits: 50 ms at a time, in a loop. A generous bound: the dead reader
     * is found within about 100 ms. */
    double started = monotonic_s();
    int32_t rc;
    do {
        rc = shmline_writer_write(w, "12345678", 8, 0, 50 * 1000 * 1000);
    } while (rc == SHMLINE_TIMEOUT && monotonic_s() - started < 30);
    EXPECT(rc, SHMLINE_OK);
    shmline_stream_stats stats;
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.readers_reclaimed == 1);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_a_lossy_reader_never_blocks_the_writer_and_counts_what_it_missed(void) {
    shmline_stream *s = make_stream("lossy", 4, 8);
    shmline_reader_options ro = shmline_reader_options_default();
    ro.lossy = 1;
    shmline_reader *r = NULL;
    EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_OK);
    shmline_writer *w = make_writer(s);
    for (uint64_t i = 0; i < 10; i++) {
        EXPECT(shmline_writer_write(w, &i, sizeof i, 0, 0), SHMLINE_OK);
    }
    uint64_t value = 0;
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, &value, sizeof value, 0, &info), SHMLINE_OK);
    CHECK(info.missed > 0 && info.seq == info.missed && value == info.seq);
    uint64_t missed = 0;
    EXPECT(shmline_reader_missed(r, &missed), SHMLINE_OK);
    CHECK(missed == info.missed);
    EXPECT(shmline_reader_missed(NULL, &missed), SHMLINE_NULL_POINTER);
    EXPECT(shmline_reader_missed(r, NULL), SHMLINE_NULL_POINTER);
    const void *data = NULL;
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_UNSUPPORTED);
    EXPECT_MESSAGE("lossless");
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_start_positions_choose_the_first_frame(void) {
    shmline_stream *s = make_stream("start", 4, 8);
    shmline_reader *keeper = make_reader(s); /* holds the frames in the ring */
    shmline_writer *w = make_writer(s);
    for (uint64_t i = 0; i < 3; i++) {
        EXPECT(shmline_writer_write(w, &i, sizeof i, 0, 0), SHMLINE_OK);
    }
    const uint32_t starts[3] = {SHMLINE_START_NEXT, SHMLINE_START_NEWEST, SHMLINE_START_OLDEST};
    const uint64_t first[3] = {3, 2, 0};
    for (int k = 0; k < 3; k++) {
        shmline_reader_options ro = shmline_reader_options_default();
        ro.start = starts[k];
        shmline_reader *r = NULL;
        EXPECT(shmline_reader_open(s, &ro, &r), SHMLINE_OK);
        uint64_t position = 99;
        EXPECT(shmline_reader_position(r, &position), SHMLINE_OK);
        CHECK(position == first[k]);
        shmline_reader_close(r);
    }
    shmline_reader_close(keeper);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_checksummed_frames_round_trip(void) {
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = 64;
    o.checksum = 1;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique("crc"), &o, &s), SHMLINE_OK);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    void *slot = NULL;
    size_t capacity = 0;
    EXPECT(shmline_writer_write(w, "checked", 7, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_reserve(w, 0, &slot, &capacity), SHMLINE_OK);
    if (slot != NULL) {
        memcpy(slot, "zero-copy", 9);
    }
    EXPECT(shmline_writer_commit(w, 9, 0), SHMLINE_OK);
    char buf[64];
    shmline_frame_info info;
    const void *data = NULL;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.len == 7 && memcmp(buf, "checked", 7) == 0);
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_OK);
    CHECK(data != NULL && info.len == 9 && memcmp(data, "zero-copy", 9) == 0);
    EXPECT(shmline_reader_release(r), SHMLINE_OK);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_writers_and_readers_outlive_their_stream_handle(void) {
    shmline_stream *s = make_stream("outlive", 4, 8);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    shmline_stream_close(s);
    EXPECT(shmline_writer_write(w, "late", 4, 0, 0), SHMLINE_OK);
    char buf[8];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.len == 4 && memcmp(buf, "late", 4) == 0);
    shmline_writer_close(w);
    shmline_reader_close(r);
}

static void test_writers_and_readers_give_another_handle_to_their_stream(void) {
    shmline_stream *s = make_stream("own", 4, 8);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    char name[160];
    snprintf(name, sizeof name, "%s", shmline_stream_name(s));
    shmline_stream_close(s);
    shmline_stream *from_reader = NULL, *from_writer = NULL;
    EXPECT(shmline_reader_stream(r, &from_reader), SHMLINE_OK);
    EXPECT(shmline_writer_stream(w, &from_writer), SHMLINE_OK);
    CHECK(from_reader != NULL && strcmp(shmline_stream_name(from_reader), name) == 0);
    CHECK(from_writer != NULL && strcmp(shmline_stream_name(from_writer), name) == 0);
    shmline_stream_info info;
    EXPECT(shmline_stream_get_info(from_reader, &info), SHMLINE_OK);
    CHECK(info.capacity == 4 && info.max_frame_size == 8);
    EXPECT(shmline_writer_write(w, "mine", 4, 0, 0), SHMLINE_OK);
    shmline_stream_stats stats;
    EXPECT(shmline_stream_get_stats(from_writer, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.frames_written == 1);

    shmline_stream *out = (shmline_stream *)name; /* any non-NULL value: must be reset */
    EXPECT(shmline_reader_stream(NULL, &out), SHMLINE_NULL_POINTER);
    CHECK(out == NULL);
    EXPECT(shmline_reader_stream(r, NULL), SHMLINE_NULL_POINTER);
    out = (shmline_stream *)name;
    EXPECT(shmline_writer_stream(NULL, &out), SHMLINE_NULL_POINTER);
    CHECK(out == NULL);
    EXPECT(shmline_writer_stream(w, NULL), SHMLINE_NULL_POINTER);

    /* The stream (unlink_on_close) is removed when its last handle goes, these included. */
    shmline_writer_close(w);
    shmline_reader_close(r);
    shmline_stream_close(from_reader);
    shmline_stream *again = NULL;
    EXPECT(shmline_stream_open(name, &again), SHMLINE_OK);
    shmline_stream_close(again);
    shmline_stream_close(from_writer);
    EXPECT(shmline_stream_open(name, &again), SHMLINE_NOT_FOUND);
}

static void test_stats_snapshot_the_shared_counters(void) {
    shmline_stream *s = make_stream("stats", 4, 8);
    shmline_stream_stats stats;
    shmline_reader_stats readers[4];
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.capacity == 4 && stats.writer_state == SHMLINE_WRITER_STATE_NONE);
    CHECK(stats.writer_pid == 0 && stats.reader_count == 0 && stats.frames_written == 0);
    shmline_reader *r1 = make_reader(s);
    shmline_reader_options ro = shmline_reader_options_default();
    ro.lossy = 1;
    shmline_reader *r2 = NULL;
    EXPECT(shmline_reader_open(s, &ro, &r2), SHMLINE_OK);
    shmline_writer *w = make_writer(s);
    EXPECT(shmline_writer_write(w, "abc", 3, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "de", 2, 0, 0), SHMLINE_OK);
    char buf[8];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r1, buf, sizeof buf, 0, &info), SHMLINE_OK);
    EXPECT(shmline_stream_get_stats(s, &stats, readers, 4), SHMLINE_OK);
    CHECK(stats.writer_state == SHMLINE_WRITER_STATE_ACTIVE && stats.writer_pid > 0);
    CHECK(stats.frames_written == 2 && stats.bytes_written == 5 && stats.reader_count == 2);
    CHECK(stats.fill > 0.0 && stats.fill <= 1.0);
    int lossless_seen = 0, lossy_seen = 0;
    for (uint32_t i = 0; i < stats.reader_count && i < 4; i++) {
        CHECK(readers[i].pid == stats.writer_pid && readers[i].alive);
        if (readers[i].lossy) {
            lossy_seen++;
            CHECK(readers[i].lag == 2 && readers[i].frames_read == 0);
        } else {
            lossless_seen++;
            CHECK(readers[i].position == 1 && readers[i].frames_read == 1);
            CHECK(readers[i].bytes_read == 3 && readers[i].lag == 1 && readers[i].missed == 0);
        }
    }
    CHECK(lossless_seen == 1 && lossy_seen == 1);
    /* Room for one reader: one is written, reader_count still says two. */
    EXPECT(shmline_stream_get_stats(s, &stats, readers, 1), SHMLINE_OK);
    CHECK(stats.reader_count == 2);
    EXPECT(shmline_stream_get_stats(NULL, &stats, NULL, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_stats(s, NULL, NULL, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 2), SHMLINE_NULL_POINTER);
    shmline_writer_close(w);
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.writer_state == SHMLINE_WRITER_STATE_CLOSED);
    shmline_reader_close(r1);
    shmline_reader_close(r2);
    shmline_stream_close(s);
}

static void test_readers_of_a_group_share_the_frames_and_bad_groups_are_refused(void) {
    shmline_stream_options o = shmline_stream_options_default();
    o.capacity = 8;
    o.max_frame_size = 8;
    o.unlink_on_close = 1;
    o.max_groups = 65;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique("groups"), &o, &s), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("groups");
    o.max_groups = 1;
    EXPECT(shmline_stream_create(unique("groups"), &o, &s), SHMLINE_OK);
    shmline_stream_info info;
    EXPECT(shmline_stream_get_info(s, &info), SHMLINE_OK);
    CHECK(info.max_groups == 1);

    /* Two members in one process: each frame goes to one of them, copy or zero-copy. */
    shmline_reader_options ro = shmline_reader_options_default();
    ro.group = "workers";
    shmline_reader *a = NULL, *b = NULL, *plain = NULL, *refused = NULL;
    EXPECT(shmline_reader_open(s, &ro, &a), SHMLINE_OK);
    EXPECT(shmline_reader_open(s, &ro, &b), SHMLINE_OK);
    ro.group = ""; /* "" is a plain reader */
    EXPECT(shmline_reader_open(s, &ro, &plain), SHMLINE_OK);
    shmline_writer *w = make_writer(s);
    for (uint64_t i = 0; i < 4; i++) {
        EXPECT(shmline_writer_write(w, &i, sizeof i, 0, 0), SHMLINE_OK);
    }
    uint64_t value = 0;
    const void *data = NULL;
    shmline_frame_info info_a, info_b;
    EXPECT(shmline_reader_try_read(a, &value, sizeof value, &info_a), SHMLINE_OK);
    CHECK(info_a.seq == 0 && value == 0);
    EXPECT(shmline_reader_acquire(b, 0, &data, &info_b), SHMLINE_OK);
    CHECK(info_b.seq == 1 && data != NULL && memcmp(data, &info_b.seq, 8) == 0);
    EXPECT(shmline_reader_try_read(a, &value, sizeof value, &info_a), SHMLINE_OK);
    CHECK(info_a.seq == 2 && value == 2);
    EXPECT(shmline_reader_release(b), SHMLINE_OK);
    EXPECT(shmline_reader_try_read(b, &value, sizeof value, &info_b), SHMLINE_OK);
    CHECK(info_b.seq == 3 && value == 3);
    EXPECT(shmline_reader_try_read(a, &value, sizeof value, &info_a), SHMLINE_EMPTY);
    EXPECT(shmline_reader_try_read(b, &value, sizeof value, &info_b), SHMLINE_EMPTY);
    for (uint64_t i = 0; i < 4; i++) {
        shmline_frame_info info_p;
        EXPECT(shmline_reader_try_read(plain, &value, sizeof value, &info_p), SHMLINE_OK);
        CHECK(info_p.seq == i && value == i);
    }

    shmline_stream_stats stats;
    shmline_reader_stats readers[4];
    EXPECT(shmline_stream_get_stats(s, &stats, readers, 4), SHMLINE_OK);
    CHECK(stats.group_count == 1 && stats.frames_redelivered == 0 && stats.reader_count == 3);
    int members = 0, plains = 0;
    for (uint32_t i = 0; i < stats.reader_count && i < 4; i++) {
        if (strcmp(readers[i].group, "workers") == 0) {
            members++;
        } else if (readers[i].group[0] == '\0') {
            plains++;
        }
    }
    CHECK(members == 2 && plains == 1);

    /* Bad groups: a second group past max_groups, bad names, a lossy member. */
    ro = shmline_reader_options_default();
    ro.group = "other";
    EXPECT(shmline_reader_open(s, &ro, &refused), SHMLINE_TOO_MANY_READERS);
    EXPECT_MESSAGE("max_groups");
    CHECK(refused == NULL);
    ro.group = "bad name";
    EXPECT(shmline_reader_open(s, &ro, &refused), SHMLINE_INVALID_NAME);
    EXPECT_MESSAGE("group");
    ro.group = "0123456789012345678901234567890123456789012345678901234567890123";
    EXPECT(shmline_reader_open(s, &ro, &refused), SHMLINE_INVALID_NAME);
    EXPECT_MESSAGE("63");
    ro.group = "workers";
    ro.lossy = 1;
    EXPECT(shmline_reader_open(s, &ro, &refused), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("lossless");
    CHECK(refused == NULL);

    shmline_reader_close(a);
    shmline_reader_close(b);
    shmline_reader_close(plain);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_stream_list_names_every_stream(void) {
    shmline_stream *a = make_stream("list-a", 4, 8);
    shmline_stream *b = make_stream("list-b", 4, 8);
    size_t len = 0;
    EXPECT(shmline_stream_list(NULL, 0, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_list(NULL, 10, &len), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_list(NULL, 0, &len), SHMLINE_BUFFER_TOO_SMALL);
    CHECK(len > strlen(shmline_stream_name(a)) + strlen(shmline_stream_name(b)) + 2);
    /* Other programs may create streams meanwhile: retry until the list fits. */
    char *names = NULL;
    int32_t status = SHMLINE_BUFFER_TOO_SMALL;
    for (int attempt = 0; attempt < 100 && status == SHMLINE_BUFFER_TOO_SMALL; attempt++) {
        free(names);
        size_t cap = len;
        names = (char *)malloc(cap);
        status = shmline_stream_list(names, cap, &len);
    }
    EXPECT(status, SHMLINE_OK);
    int found = 0;
    for (const char *n = names; status == SHMLINE_OK && *n; n += strlen(n) + 1) {
        found += strcmp(n, shmline_stream_name(a)) == 0 || strcmp(n, shmline_stream_name(b)) == 0;
    }
    CHECK(found == 2);
    free(names);
    shmline_stream_close(a);
    shmline_stream_close(b);
}

static void test_flag_events_stay_set_until_cleared(void) {
    const char *name = unique("flag");
    shmline_event_options eo = shmline_event_options_default();
    eo.unlink_on_close = 1;
    shmline_event *ev = NULL, *other = NULL, *dup = NULL;
    EXPECT(shmline_event_create(name, &eo, &ev), SHMLINE_OK);
    EXPECT(shmline_event_create(name, &eo, &dup), SHMLINE_ALREADY_EXISTS);
    CHECK(dup == NULL);
    EXPECT(shmline_event_open(name, &other), SHMLINE_OK);
    bool set = true;
    uint32_t count = 99, mode = 99;
    EXPECT(shmline_event_is_set(ev, &set), SHMLINE_OK);
    CHECK(!set);
    EXPECT(shmline_event_mode(other, &mode), SHMLINE_OK);
    CHECK(mode == SHMLINE_EVENT_FLAG);
    EXPECT(shmline_event_wait(ev, 0), SHMLINE_EMPTY);
    EXPECT(shmline_event_wait(ev, 1000000), SHMLINE_TIMEOUT);
    EXPECT(shmline_event_set(other), SHMLINE_OK);
    EXPECT(shmline_event_set(other), SHMLINE_OK);
    EXPECT(shmline_event_count(ev, &count), SHMLINE_OK);
    CHECK(count == 1);
    EXPECT(shmline_event_wait(ev, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    EXPECT(shmline_event_wait(ev, 0), SHMLINE_OK);
    EXPECT(shmline_event_is_set(ev, &set), SHMLINE_OK);
    CHECK(set);
    EXPECT(shmline_event_clear(other), SHMLINE_OK);
    EXPECT(shmline_event_is_set(ev, &set), SHMLINE_OK);
    CHECK(!set);
    shmline_event_close(other);
    shmline_event_close(ev);
    shmline_event_close(NULL);
    EXPECT(shmline_event_open(name, &other), SHMLINE_NOT_FOUND);
}

static void test_counting_events_release_one_wait_per_set(void) {
    const char *name = unique("counting");
    shmline_event_options eo = shmline_event_options_default();
    eo.mode = SHMLINE_EVENT_COUNTING;
    shmline_event *ev = NULL;
    EXPECT(shmline_event_create(name, &eo, &ev), SHMLINE_OK);
    uint32_t mode = 0, count = 0;
    EXPECT(shmline_event_mode(ev, &mode), SHMLINE_OK);
    CHECK(mode == SHMLINE_EVENT_COUNTING);
    for (int i = 0; i < 3; i++) {
        EXPECT(shmline_event_set(ev), SHMLINE_OK);
    }
    EXPECT(shmline_event_count(ev, &count), SHMLINE_OK);
    CHECK(count == 3);
    EXPECT(shmline_event_wait(ev, 0), SHMLINE_OK);
    EXPECT(shmline_event_wait(ev, 1000000), SHMLINE_OK);
    EXPECT(shmline_event_wait(ev, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    EXPECT(shmline_event_wait(ev, 0), SHMLINE_EMPTY);
    EXPECT(shmline_event_set(ev), SHMLINE_OK);
    EXPECT(shmline_event_clear(ev), SHMLINE_OK);
    EXPECT(shmline_event_wait(ev, 0), SHMLINE_EMPTY);
    shmline_event_close(ev);
    /* Not created with unlink_on_close: the name stays until unlinked. */
    EXPECT(shmline_event_open(name, &ev), SHMLINE_OK);
    shmline_event_close(ev);
    EXPECT(shmline_event_unlink(name), SHMLINE_OK);
    EXPECT(shmline_event_unlink(name), SHMLINE_NOT_FOUND);
}

static void test_event_calls_refuse_bad_arguments_with_a_status(void) {
    shmline_event_options eo = shmline_event_options_default();
    shmline_event *ev = (shmline_event *)&eo;
    EXPECT(shmline_event_create(NULL, &eo, &ev), SHMLINE_NULL_POINTER);
    CHECK(ev == NULL);
    EXPECT(shmline_event_create(unique("null-out"), &eo, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_create("no spaces", &eo, &ev), SHMLINE_INVALID_NAME);
    eo.mode = 2;
    EXPECT(shmline_event_create(unique("mode"), &eo, &ev), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("event mode");
    eo = shmline_event_options_default();
    eo.struct_size = 1;
    EXPECT(shmline_event_create(unique("size"), &eo, &ev), SHMLINE_INVALID_ARGUMENT);
    eo = shmline_event_options_default();
    eo.permissions = 0200;
    EXPECT(shmline_event_create(unique("perm"), &eo, &ev), SHMLINE_INVALID_ARGUMENT);
    CHECK(ev == NULL);
    EXPECT(shmline_event_open(NULL, &ev), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_open(unique("x"), NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_open(unique("missing"), &ev), SHMLINE_NOT_FOUND);
    EXPECT(shmline_event_unlink(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_unlink("-bad"), SHMLINE_INVALID_NAME);
    bool set;
    uint32_t value;
    EXPECT(shmline_event_set(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_clear(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_wait(NULL, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_is_set(NULL, &set), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_count(NULL, &value), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_mode(NULL, &value), SHMLINE_NULL_POINTER);
    /* NULL options: the defaults, which keep the name after close. */
    const char *name = unique("defaults");
    EXPECT(shmline_event_create(name, NULL, &ev), SHMLINE_OK);
    EXPECT(shmline_event_is_set(ev, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_count(ev, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_event_mode(ev, NULL), SHMLINE_NULL_POINTER);
    shmline_event_close(ev);
    EXPECT(shmline_event_unlink(name), SHMLINE_OK);
}

static void test_event_open_refuses_segments_that_are_not_shmline_events(void) {
    const char *name = unique("fake-event");
    char file[200];
    snprintf(file, sizeof file, "shmline.event.%s", name);
    shmline_event *ev = NULL;
    static const unsigned char future[12] = {'S', 'H', 'M', 'L', 'E', 'V', 'N', 'T', 99, 0, 0, 0};
    write_fake_segment(file, future, sizeof future, 256);
    EXPECT(shmline_event_open(name, &ev), SHMLINE_VERSION_MISMATCH);
    write_fake_segment(file, (const unsigned char *)"SHMLSTRM", 8, 256);
    EXPECT(shmline_event_open(name, &ev), SHMLINE_NOT_SHMLINE);
    CHECK(ev == NULL);
    EXPECT(shmline_event_unlink(name), SHMLINE_OK);
}

static void test_remove_stale_recovers_names_left_by_a_dead_process_and_spares_live_ones(void) {
    const char *name = unique("stale");
    pid_t child = fork();
    if (child == 0) {
        /* A process that makes a stream and an event, then dies without closing them. */
        shmline_stream_options so = shmline_stream_options_default();
        so.max_frame_size = 8;
        shmline_stream *s = NULL;
        shmline_event *ev = NULL;
        int ok = shmline_stream_create(name, &so, &s) == SHMLINE_OK &&
                 shmline_event_create(name, NULL, &ev) == SHMLINE_OK;
        _exit(ok ? 0 : 1);
    }
    CHECK(child > 0);
    int status = -1;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = 8;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(name, &o, &s), SHMLINE_ALREADY_EXISTS);
    EXPECT_MESSAGE("shmline_stream_remove_stale");
    /* C callers are told the C function, not the Rust call the core's message names. */
    CHECK(strstr(shmline_last_error_message(), "::") == NULL);
    EXPECT(shmline_stream_remove_stale(name), SHMLINE_OK);
    EXPECT(shmline_stream_remove_stale(name), SHMLINE_NOT_FOUND);
    EXPECT(shmline_stream_create(name, &o, &s), SHMLINE_OK);
    EXPECT(shmline_stream_remove_stale(name), SHMLINE_ALREADY_EXISTS);
    EXPECT_MESSAGE("in use by its creator");
    EXPECT(shmline_stream_remove_stale(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_stream_remove_stale("bad/name"), SHMLINE_INVALID_NAME);
    shmline_stream_close(s);

    shmline_event_options eo = shmline_event_options_default();
    eo.unlink_on_close = 1;
    shmline_event *ev = NULL;
    EXPECT(shmline_event_create(name, &eo, &ev), SHMLINE_ALREADY_EXISTS);
    EXPECT_MESSAGE("shmline_event_remove_stale");
    CHECK(strstr(shmline_last_error_message(), "::") == NULL);
    EXPECT(shmline_event_remove_stale(name), SHMLINE_OK);
    EXPECT(shmline_event_remove_stale(name), SHMLINE_NOT_FOUND);
    EXPECT(shmline_event_create(name, &eo, &ev), SHMLINE_OK);
    EXPECT(shmline_event_remove_stale(name), SHMLINE_ALREADY_EXISTS);
    EXPECT(shmline_event_remove_stale(NULL), SHMLINE_NULL_POINTER);
    shmline_event_close(ev);
}

/* A new multi-writer stream (up to `max_writers` writers) that removes itself when closed. */
static shmline_stream *make_multi_stream(const char *tag, uint32_t max_writers) {
    shmline_stream_options o = shmline_stream_options_default();
    o.capacity = 8;
    o.max_frame_size = 8;
    o.max_writers = max_writers;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique(tag), &o, &s), SHMLINE_OK);
    return s;
}

/* Forks a process that attaches a writer to `s`, writes `frame` (one byte) and exits without
 * closing; returns once it is reaped (so its pid no longer names a live process). */
static void write_then_die_in_a_child(shmline_stream *s, const char *frame) {
    pid_t child = fork();
    if (child == 0) {
        shmline_writer *w = NULL;
        int ok = shmline_writer_open(s, NULL, &w) == SHMLINE_OK &&
                 shmline_writer_write(w, frame, 1, 0, 0) == SHMLINE_OK;
        _exit(ok ? 0 : 1);
    }
    CHECK(child > 0);
    int status = -1;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_a_multi_writer_stream_ends_with_end_of_stream_when_its_last_live_writer_closes(
    void) {
    shmline_stream *s = make_multi_stream("mw-end", 4);
    shmline_reader *r = make_reader(s);
    write_then_die_in_a_child(s, "A");
    /* Nobody noticed the death yet; the live writer's close must, and end the stream. */
    shmline_writer *w = make_writer(s);
    EXPECT(shmline_writer_write(w, "B", 1, 0, 0), SHMLINE_OK);
    shmline_writer_close(w);
    char buf[8];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(info.len == 1 && buf[0] == 'A');
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(info.len == 1 && buf[0] == 'B');
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info),
           SHMLINE_END_OF_STREAM);
    w = NULL;
    EXPECT(shmline_writer_open(s, NULL, &w), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("closed");
    CHECK(w == NULL);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_END_OF_STREAM);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static void test_a_multi_writer_stream_whose_writers_all_died_refuses_new_writers(void) {
    shmline_stream *s = make_multi_stream("mw-dead", 2);
    shmline_reader *r = make_reader(s);
    write_then_die_in_a_child(s, "A");
    char buf[8];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(info.len == 1 && buf[0] == 'A');
    EXPECT(shmline_reader_read(r, buf, sizeof buf, SHMLINE_TIMEOUT_INFINITE, &info),
           SHMLINE_WRITER_DEAD);
    shmline_writer *w = NULL;
    EXPECT(shmline_writer_open(s, NULL, &w), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("died");
    CHECK(w == NULL);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_WRITER_DEAD);
    shmline_stream_stats stats;
    EXPECT(shmline_stream_get_stats(s, &stats, NULL, 0), SHMLINE_OK);
    CHECK(stats.writer_state == SHMLINE_WRITER_STATE_DEAD);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

static void test_acquire_reports_a_skipped_number_in_missed_as_a_copy_read_does(void) {
    shmline_stream *s = make_multi_stream("mw-missed", 2);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    void *slot = NULL;
    size_t room = 0;
    EXPECT(shmline_writer_write(w, "a", 1, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_reserve(w, 0, &slot, &room), SHMLINE_OK);
    EXPECT(shmline_writer_abort(w), SHMLINE_OK); /* number 1: published as skipped */
    EXPECT(shmline_writer_write(w, "b", 1, 0, 0), SHMLINE_OK);
    EXPECT(shmline_writer_write(w, "c", 1, 0, 0), SHMLINE_OK);
    char buf[8];
    shmline_frame_info info;
    const void *data = NULL;
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.missed == 0);
    EXPECT(shmline_reader_acquire(r, 0, &data, &info), SHMLINE_OK);
    CHECK(info.seq == 2 && info.missed == 1 && data != NULL && ((const char *)data)[0] == 'b');
    EXPECT(shmline_reader_release(r), SHMLINE_OK);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 3 && info.missed == 0 && buf[0] == 'c');
    uint64_t missed = 0;
    EXPECT(shmline_reader_missed(r, &missed), SHMLINE_OK);
    CHECK(missed == 1);
    shmline_writer_close(w);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

/* ---- Backpressure policies and bad input (issue 11) ---- */

/* A stream of 4 slots of 8-byte frames under backpressure `policy`, a reader and a writer. */
static shmline_stream *make_policy_stream(const char *tag, uint32_t policy, shmline_reader **r,
                                          shmline_writer **w) {
    shmline_stream_options o = shmline_stream_options_default();
    o.capacity = 4;
    o.max_frame_size = 8;
    o.backpressure = policy;
    o.unlink_on_close = 1;
    shmline_stream *s = NULL;
    EXPECT(shmline_stream_create(unique(tag), &o, &s), SHMLINE_OK);
    *r = make_reader(s);
    *w = make_writer(s);
    return s;
}

/* Writes frame `i`: the 8 bytes of `i`. */
static int32_t write_frame(shmline_writer *w, uint64_t i, int64_t timeout_ns) {
    return shmline_writer_write(w, &i, sizeof i, 0, timeout_ns);
}

/* Reads every frame there is now; checks they carry first, first + 1, ... up to `end`
 * (exclusive) and that the next read finds the ring empty. */
static void expect_frames(shmline_reader *r, uint64_t first, uint64_t end) {
    for (uint64_t i = first; i < end; i++) {
        uint64_t got = 0;
        shmline_frame_info info;
        EXPECT(shmline_reader_read(r, &got, sizeof got, 0, &info), SHMLINE_OK);
        CHECK(got == i && info.seq == i);
    }
    uint64_t none = 0;
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, &none, sizeof none, 0, &info), SHMLINE_EMPTY);
}

static void test_block_policy_waits_for_space_and_loses_nothing(void) {
    shmline_reader *r;
    shmline_writer *w;
    shmline_stream *s = make_policy_stream("block", SHMLINE_BACKPRESSURE_BLOCK, &r, &w);
    for (uint64_t i = 0; i < 4; i++) {
        EXPECT(write_frame(w, i, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    }
    uint64_t extra = 99;
    size_t lens[1] = {sizeof extra};
    size_t written = 7;
    void *slot = (void *)1;
    size_t capacity = 7;
    EXPECT(write_frame(w, extra, 0), SHMLINE_FULL);
    EXPECT(write_frame(w, extra, 1000000), SHMLINE_TIMEOUT);
    EXPECT(shmline_writer_write_batch(w, &extra, lens, 1, 0, 1000000, &written), SHMLINE_TIMEOUT);
    CHECK(written == 0);
    EXPECT(shmline_writer_reserve(w, 1000000, &slot, &capacity), SHMLINE_TIMEOUT);
    CHECK(slot == NULL && capacity == 0);
    expect_frames(r, 0, 4);
    EXPECT(write_frame(w, 4, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    expect_frames(r, 4, 5);
    uint64_t dropped = 9;
    EXPECT(shmline_writer_frames_dropped(w, &dropped), SHMLINE_OK);
    CHECK(dropped == 0);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_fail_policy_returns_full_at_once_even_with_an_infinite_timeout(void) {
    shmline_reader *r;
    shmline_writer *w;
    shmline_stream *s = make_policy_stream("fail", SHMLINE_BACKPRESSURE_FAIL, &r, &w);
    for (uint64_t i = 0; i < 3; i++) {
        EXPECT(write_frame(w, i, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    }
    /* One slot left: a batch of three writes its first frame and says so. */
    uint64_t batch[3] = {3, 98, 99};
    size_t lens[3] = {8, 8, 8};
    size_t written = 0;
    EXPECT(shmline_writer_write_batch(w, batch, lens, 3, 0, SHMLINE_TIMEOUT_INFINITE, &written),
           SHMLINE_OK);
    CHECK(written == 1);
    EXPECT(write_frame(w, 99, SHMLINE_TIMEOUT_INFINITE), SHMLINE_FULL);
    EXPECT(shmline_writer_write_batch(w, batch, lens, 1, 0, SHMLINE_TIMEOUT_INFINITE, &written),
           SHMLINE_FULL);
    CHECK(written == 0);
    void *slot = (void *)1;
    size_t capacity = 7;
    EXPECT(shmline_writer_reserve(w, SHMLINE_TIMEOUT_INFINITE, &slot, &capacity), SHMLINE_FULL);
    CHECK(slot == NULL && capacity == 0);
    expect_frames(r, 0, 4);
    EXPECT(write_frame(w, 4, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    expect_frames(r, 4, 5);
    uint64_t dropped = 9;
    EXPECT(shmline_writer_frames_dropped(w, &dropped), SHMLINE_OK);
    CHECK(dropped == 0);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_drop_newest_policy_discards_copy_writes_and_refuses_reserve(void) {
    shmline_reader *r;
    shmline_writer *w;
    shmline_stream *s = make_policy_stream("drop-newest", SHMLINE_BACKPRESSURE_DROP_NEWEST, &r,
                                           &w);
    for (uint64_t i = 0; i < 4; i++) {
        EXPECT(write_frame(w, i, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    }
    EXPECT(write_frame(w, 99, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    uint64_t batch[2] = {98, 99};
    size_t lens[2] = {8, 8};
    size_t written = 0;
    EXPECT(shmline_writer_write_batch(w, batch, lens, 2, 0, SHMLINE_TIMEOUT_INFINITE, &written),
           SHMLINE_OK);
    CHECK(written == 2);
    void *slot = (void *)1;
    size_t capacity = 7;
    EXPECT(shmline_writer_reserve(w, SHMLINE_TIMEOUT_INFINITE, &slot, &capacity), SHMLINE_FULL);
    CHECK(slot == NULL && capacity == 0);
    uint64_t dropped = 0;
    EXPECT(shmline_writer_frames_dropped(w, &dropped), SHMLINE_OK);
    CHECK(dropped == 3);
    expect_frames(r, 0, 4);
    EXPECT(write_frame(w, 4, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    expect_frames(r, 4, 5);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_drop_oldest_policy_never_refuses_and_readers_skip_to_the_newest(void) {
    shmline_reader *r;
    shmline_writer *w;
    shmline_stream *s = make_policy_stream("drop-oldest", SHMLINE_BACKPRESSURE_DROP_OLDEST, &r,
                                           &w);
    for (uint64_t i = 0; i < 11; i++) {
        EXPECT(write_frame(w, i, SHMLINE_TIMEOUT_INFINITE), SHMLINE_OK);
    }
    void *slot = NULL;
    size_t capacity = 0;
    EXPECT(shmline_writer_reserve(w, SHMLINE_TIMEOUT_INFINITE, &slot, &capacity), SHMLINE_OK);
    uint64_t last = 11;
    memcpy(slot, &last, sizeof last);
    EXPECT(shmline_writer_commit(w, sizeof last, 0), SHMLINE_OK);
    uint64_t got = 0;
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, &got, sizeof got, SHMLINE_TIMEOUT_INFINITE, &info), SHMLINE_OK);
    CHECK(got >= 12 - 4 && got == info.seq && info.missed == got);
    expect_frames(r, got + 1, 12);
    uint64_t dropped = 9;
    EXPECT(shmline_writer_frames_dropped(w, &dropped), SHMLINE_OK);
    CHECK(dropped == 0);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

static void test_lengths_no_buffer_can_have_are_invalid_arguments(void) {
    shmline_stream *s = make_stream("huge-len", 4, 16);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    const char data[16] = "0123456789abcde";
    EXPECT(shmline_writer_write(w, data, SIZE_MAX, 0, 0), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("data");
    EXPECT(shmline_writer_try_write(w, data, SIZE_MAX, 0), SHMLINE_INVALID_ARGUMENT);
    size_t lens[2] = {SIZE_MAX, 2};
    size_t written = 9;
    EXPECT(shmline_writer_write_batch(w, data, lens, 2, 0, 0, &written),
           SHMLINE_INVALID_ARGUMENT);
    CHECK(written == 0);
    EXPECT(shmline_writer_write_batch(w, data, lens, SIZE_MAX, 0, 0, &written),
           SHMLINE_INVALID_ARGUMENT);
    EXPECT(write_frame(w, 1, 0), SHMLINE_OK); /* nothing else was written */
    char buf[16];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(r, buf, SIZE_MAX, 0, &info), SHMLINE_INVALID_ARGUMENT);
    size_t needed = 0;
    EXPECT(shmline_stream_list(buf, SIZE_MAX, &needed), SHMLINE_INVALID_ARGUMENT);
    uint32_t ndim = 9;
    EXPECT(shmline_stream_get_schema(s, buf, SIZE_MAX, NULL, 0, &ndim), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_reader_read(r, buf, sizeof buf, 0, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.len == 8);
    shmline_reader_close(r);
    shmline_writer_close(w);
    shmline_stream_close(s);
}

/* WaitSets (issue 12): readiness, timeouts, argument checks, a fan-in of two writer processes and
 * no CPU while idle. */

static void test_a_waitset_reports_ready_readers_and_events_and_refuses_bad_arguments(void) {
    shmline_stream *a = make_stream("wsa", 4, 8), *b = make_stream("wsb", 4, 8);
    shmline_reader *ra = make_reader(a), *rb = make_reader(b);
    shmline_writer *wb = make_writer(b);
    shmline_event_options eo = shmline_event_options_default();
    eo.unlink_on_close = 1;
    shmline_event *ev = NULL;
    EXPECT(shmline_event_create(unique("wsev"), &eo, &ev), SHMLINE_OK);
    shmline_waitset *set = NULL;
    size_t keys[4], count = 99, ka = 9, kb = 9, ke = 9, k;
    EXPECT(shmline_waitset_create(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_create(&set), SHMLINE_OK);
    EXPECT(shmline_waitset_wait(set, 0, keys, 4, &count), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("empty");
    EXPECT(shmline_waitset_add_reader(set, ra, &ka), SHMLINE_OK);
    EXPECT(shmline_waitset_add_reader(set, rb, &kb), SHMLINE_OK);
    EXPECT(shmline_waitset_add_event(set, ev, &ke), SHMLINE_OK);
    CHECK(ka == 0 && kb == 1 && ke == 2);
    EXPECT(shmline_waitset_add_reader(set, ra, &k), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_waitset_add_reader(set, NULL, &k), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_add_event(NULL, ev, &k), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_add_event(set, ev, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_wait(set, 0, keys, 0, &count), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_waitset_wait(set, 0, NULL, 4, &count), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_wait(set, 0, keys, 4, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_wait(set, 0, keys, 4, &count), SHMLINE_EMPTY);
    CHECK(count == 0);
    double started = monotonic_s();
    EXPECT(shmline_waitset_wait(set, 100000000, keys, 4, &count), SHMLINE_TIMEOUT);
    CHECK(monotonic_s() - started >= 0.1 && count == 0);
    EXPECT(shmline_writer_write(wb, "x", 1, 0, 0), SHMLINE_OK);
    EXPECT(shmline_waitset_wait(set, SHMLINE_TIMEOUT_INFINITE, keys, 4, &count), SHMLINE_OK);
    CHECK(count == 1 && keys[0] == kb);
    shmline_event_set(ev);
    EXPECT(shmline_waitset_wait(set, SHMLINE_TIMEOUT_INFINITE, keys, 4, &count), SHMLINE_OK);
    CHECK(count == 2 && keys[0] == kb && keys[1] == ke);
    /* Room for one key: the first; the other stays ready. */
    EXPECT(shmline_waitset_wait(set, 0, keys, 1, &count), SHMLINE_OK);
    CHECK(count == 1 && keys[0] == kb);
    EXPECT(shmline_waitset_remove(set, kb), SHMLINE_OK);
    EXPECT(shmline_waitset_remove(set, kb), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_waitset_remove(set, 77), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_waitset_remove(NULL, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_waitset_wait(set, 0, keys, 4, &count), SHMLINE_OK);
    CHECK(count == 1 && keys[0] == ke);
    shmline_event_clear(ev);
    EXPECT(shmline_waitset_wait(set, 0, keys, 4, &count), SHMLINE_EMPTY);
    shmline_waitset_close(set);
    shmline_waitset_close(NULL);
    shmline_event_close(ev);
    shmline_writer_close(wb);
    shmline_reader_close(ra);
    shmline_reader_close(rb);
    shmline_stream_close(a);
    shmline_stream_close(b);
}

/* Forks a writer process that writes `frames` 8-byte sequence numbers to `s`, then closes it. */
static pid_t fork_writer(shmline_stream *s, uint64_t frames) {
    pid_t child = fork();
    if (child == 0) {
        shmline_writer *w = NULL;
        int ok = shmline_writer_open(s, NULL, &w) == SHMLINE_OK;
        for (uint64_t i = 0; ok && i < frames; i++) {
            ok = shmline_writer_write(w, &i, sizeof i, 0, SHMLINE_TIMEOUT_INFINITE) == SHMLINE_OK;
        }
        shmline_writer_close(w);
        _exit(ok ? 0 : 1);
    }
    CHECK(child > 0);
    return child;
}

static void test_a_waitset_fans_in_two_writer_processes_of_10_and_200_frames(void) {
    shmline_stream *s[2] = {make_stream("fan0", 8, 8), make_stream("fan1", 8, 8)};
    shmline_reader *r[2] = {make_reader(s[0]), make_reader(s[1])};
    shmline_waitset *set = NULL;
    size_t key[2], keys[2], count;
    EXPECT(shmline_waitset_create(&set), SHMLINE_OK);
    EXPECT(shmline_waitset_add_reader(set, r[0], &key[0]), SHMLINE_OK);
    EXPECT(shmline_waitset_add_reader(set, r[1], &key[1]), SHMLINE_OK);
    pid_t child[2] = {fork_writer(s[0], 10), fork_writer(s[1], 200)};
    uint64_t next[2] = {0, 0};
    int open = 2, bad = 0;
    while (open > 0 && !bad) {
        int32_t st = shmline_waitset_wait(set, 30000000000LL, keys, 2, &count);
        if (st != SHMLINE_OK) {
            EXPECT(st, SHMLINE_OK);
            break;
        }
        for (size_t i = 0; i < count; i++) {
            size_t in = keys[i];
            uint64_t value;
            shmline_frame_info info;
            int32_t rs = shmline_reader_read(r[in], &value, sizeof value, 0, &info);
            if (rs == SHMLINE_OK) {
                bad |= value != next[in];
                next[in]++;
            } else if (rs == SHMLINE_END_OF_STREAM) {
                EXPECT(shmline_waitset_remove(set, in), SHMLINE_OK);
                open--;
            } else {
                EXPECT(rs, SHMLINE_OK);
                bad = 1;
            }
        }
    }
    CHECK(!bad && next[0] == 10 && next[1] == 200);
    for (int i = 0; i < 2; i++) {
        int status = -1;
        CHECK(waitpid(child[i], &status, 0) == child[i] && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0);
    }
    shmline_waitset_close(set);
    for (int i = 0; i < 2; i++) {
        shmline_reader_close(r[i]);
        shmline_stream_close(s[i]);
    }
}

static void test_an_idle_waitset_uses_under_1_percent_of_a_core(void) {
    shmline_stream *s = make_stream("wsidle", 4, 8);
    shmline_reader *r = make_reader(s);
    shmline_writer *w = make_writer(s);
    shmline_waitset *set = NULL;
    size_t k, keys[1], count;
    EXPECT(shmline_waitset_create(&set), SHMLINE_OK);
    EXPECT(shmline_waitset_add_reader(set, r, &k), SHMLINE_OK);
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double started = monotonic_s();
    EXPECT(shmline_waitset_wait(set, 1000000000, keys, 1, &count), SHMLINE_TIMEOUT);
    double wall = monotonic_s() - started;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    /* Valgrind emulates every instruction (and lacks futex_waitv, so the set wakes every 5 ms):
     * its CPU time says nothing about ours. */
    const char *preload = getenv("LD_PRELOAD");
    int valgrind = preload != NULL && strstr(preload, "vgpreload") != NULL;
    CHECK(wall >= 1.0 && (valgrind || cpu < 0.01 * wall));
    shmline_waitset_close(set);
    shmline_writer_close(w);
    shmline_reader_close(r);
    shmline_stream_close(s);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_api NAME_PREFIX\n");
        return 2;
    }
    prefix = argv[1];
    /* First: it checks the message is empty before any failure. */
    test_the_last_error_message_is_per_call_and_kept_across_successes();
    test_versions_match_the_header();
    test_every_status_has_a_name_and_a_description();
    test_options_defaults_set_struct_size_and_the_documented_values();
    test_stream_create_refuses_bad_arguments_with_a_status();
    test_stream_create_accepts_a_longer_options_struct_from_a_newer_header();
    test_stream_create_open_info_name_and_unlink();
    test_stream_open_refuses_segments_that_are_not_shmline_streams();
    test_stream_schemas_are_validated_stored_and_required();
    test_writer_open_enforces_one_writer_and_valid_options();
    test_writes_check_their_arguments_and_report_full_and_timeout();
    test_reserve_commit_and_abort_follow_the_reservation_state();
    test_batch_writes_check_every_frame_and_report_partial_progress();
    test_wait_for_readers_counts_attached_readers();
    test_reader_open_checks_options_and_reader_slots();
    test_reads_check_their_arguments_and_leave_a_frame_that_does_not_fit();
    test_acquire_and_release_follow_the_lending_state();
    test_batch_reads_pack_frames_and_stop_at_one_that_does_not_fit();
    test_readers_drain_then_see_end_of_stream_for_ever();
    test_readers_see_writer_dead_when_the_writer_process_exits_without_closing();
    test_a_writer_waiting_in_50_ms_slices_gets_past_a_reader_killed_with_sigkill();
    test_a_lossy_reader_never_blocks_the_writer_and_counts_what_it_missed();
    test_start_positions_choose_the_first_frame();
    test_checksummed_frames_round_trip();
    test_writers_and_readers_outlive_their_stream_handle();
    test_writers_and_readers_give_another_handle_to_their_stream();
    test_stats_snapshot_the_shared_counters();
    test_readers_of_a_group_share_the_frames_and_bad_groups_are_refused();
    test_stream_list_names_every_stream();
    test_flag_events_stay_set_until_cleared();
    test_counting_events_release_one_wait_per_set();
    test_event_calls_refuse_bad_arguments_with_a_status();
    test_event_open_refuses_segments_that_are_not_shmline_events();
    test_remove_stale_recovers_names_left_by_a_dead_process_and_spares_live_ones();
    test_a_multi_writer_stream_ends_with_end_of_stream_when_its_last_live_writer_closes();
    test_a_multi_writer_stream_whose_writers_all_died_refuses_new_writers();
    test_acquire_reports_a_skipped_number_in_missed_as_a_copy_read_does();
    /* Backpressure policies and bad input (issue 11). */
    test_block_policy_waits_for_space_and_loses_nothing();
    test_fail_policy_returns_full_at_once_even_with_an_infinite_timeout();
    test_drop_newest_policy_discards_copy_writes_and_refuses_reserve();
    test_drop_oldest_policy_never_refuses_and_readers_skip_to_the_newest();
    test_lengths_no_buffer_can_have_are_invalid_arguments();
    /* WaitSets (issue 12). */
    test_a_waitset_reports_ready_readers_and_events_and_refuses_bad_arguments();
    test_a_waitset_fans_in_two_writer_processes_of_10_and_200_frames();
    test_an_idle_waitset_uses_under_1_percent_of_a_core();
    return check_summary();
}
