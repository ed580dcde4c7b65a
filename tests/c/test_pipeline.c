/* Every pipeline function of the C API, with its error paths: declaring a pipeline (NULLs, bad
 * options, unknown tasks, validation problems listed by entry), manifests (malformed text with
 * its line and column, save and load), joining as a task (outside a pipeline, unknown tasks,
 * unknown parameters, parameters taken twice, reader options), and running pipelines of C tasks
 * to the end, to a stop and to a failure. tests/c_abi.rs also runs it under valgrind.
 *
 * Usage: test_pipeline NAME_PREFIX SOURCE SCALE SINK, where SOURCE, SCALE and SINK are the task
 * programs built from task_source.c, task_scale.c and task_sink.c. Every pipeline it runs is
 * named NAME_PREFIX-... and leaves nothing behind. Prints "N passed, N failed" and exits 0 only if
 * every check passed. */
#define _POSIX_C_SOURCE 200809L

#include "check.h"
#include "pipeline_frames.h"
#include "shmline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prefix;
static const char *source_program, *scale_program, *sink_program;

/* A pipeline name unique to this run: PREFIX-TAG-N. */
static const char *unique(const char *tag) {
    static char names[16][160];
    static int n;
    char *name = names[n % 16];
    snprintf(name, sizeof names[0], "%s-%s-%d", prefix, tag, n);
    n++;
    return name;
}

/* A new, empty declaration. */
static shmline_pipeline *declare(const char *name) {
    shmline_pipeline *p = NULL;
    EXPECT(shmline_pipeline_new(name, &p), SHMLINE_OK);
    return p;
}

/* Declares a stream of raw frames of up to PIPELINE_FRAME bytes, with `capacity` slots. */
static void add_bytes_stream(shmline_pipeline *p, const char *name, uint32_t capacity) {
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = PIPELINE_FRAME;
    o.capacity = capacity;
    EXPECT(shmline_pipeline_add_stream(p, name, &o), SHMLINE_OK);
}

/* Declares a task running `program` with no arguments. */
static void add_program(shmline_pipeline *p, const char *task, const char *program) {
    const char *argv[] = {program};
    EXPECT(shmline_pipeline_add_task(p, task, argv, 1), SHMLINE_OK);
}

static void test_declarations_check_their_arguments(void) {
    shmline_pipeline *p = (shmline_pipeline *)&p; /* not NULL: the calls must clear it */
    EXPECT(shmline_pipeline_new(NULL, &p), SHMLINE_NULL_POINTER);
    EXPECT_MESSAGE("name");
    CHECK(p == NULL);
    EXPECT(shmline_pipeline_new("x", NULL), SHMLINE_NULL_POINTER);
    const char *name = unique("decl");
    p = declare(name);
    CHECK(p != NULL && strcmp(shmline_pipeline_name(p), name) == 0);
    CHECK(shmline_pipeline_name(NULL) == NULL);

    /* Streams: the stream options struct, checked as shmline_stream_create() checks it. */
    shmline_stream_options o = shmline_stream_options_default();
    EXPECT(shmline_pipeline_add_stream(NULL, "s", &o), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_stream(p, NULL, &o), SHMLINE_NULL_POINTER);
    o.struct_size = 0;
    EXPECT(shmline_pipeline_add_stream(p, "s", &o), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("shmline_stream_options_default");
    o = shmline_stream_options_default();
    o.permissions = 0644;
    EXPECT(shmline_pipeline_add_stream(p, "s", &o), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("owner-only");
    o = shmline_stream_options_default();
    o.dtype = "<x9";
    EXPECT(shmline_pipeline_add_stream(p, "s", &o), SHMLINE_INVALID_ARGUMENT);
    o.dtype = "<f4";
    o.ndim = 1;
    EXPECT(shmline_pipeline_add_stream(p, "s", &o), SHMLINE_NULL_POINTER);
    EXPECT_MESSAGE("shape");
    static const uint64_t shape[1] = {8};
    o.shape = shape;
    o.unlink_on_close = 1; /* ignored: the runner removes every segment anyway */
    EXPECT(shmline_pipeline_add_stream(p, "s", &o), SHMLINE_OK);

    /* Events. */
    EXPECT(shmline_pipeline_add_event(NULL, "e", SHMLINE_EVENT_FLAG), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_event(p, NULL, SHMLINE_EVENT_FLAG), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_event(p, "e", 7), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("SHMLINE_EVENT_COUNTING");
    EXPECT(shmline_pipeline_add_event(p, "e", SHMLINE_EVENT_COUNTING), SHMLINE_OK);

    /* Tasks: argv[0] is the program. */
    const char *argv[] = {"sleep", NULL};
    EXPECT(shmline_pipeline_add_task(NULL, "t", argv, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_task(p, NULL, argv, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_task(p, "t", argv, 0), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("argv[0]");
    EXPECT(shmline_pipeline_add_task(p, "t", NULL, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_add_task(p, "t", argv, 2), SHMLINE_NULL_POINTER);
    EXPECT_MESSAGE("argv[i]");
    argv[1] = "600";
    EXPECT(shmline_pipeline_add_task(p, "t", argv, 2), SHMLINE_OK);

    /* Settings of a task, found by name. */
    EXPECT(shmline_pipeline_task_set_cwd(p, "ghost", "/tmp"), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("has no task \"ghost\"");
    EXPECT_MESSAGE("its tasks are: t");
    EXPECT(shmline_pipeline_task_set_cwd(p, "t", NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_task_set_cwd(NULL, "t", "/tmp"), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_task_set_cwd(p, "t", "/tmp"), SHMLINE_OK);
    EXPECT(shmline_pipeline_task_set_env(p, "t", "", "1"), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_pipeline_task_set_env(p, "t", "A=B", "1"), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("'='");
    EXPECT(shmline_pipeline_task_set_env(p, "t", "SEED", NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_task_set_env(p, "ghost", "SEED", "1"), SHMLINE_NOT_FOUND);
    EXPECT(shmline_pipeline_task_set_env(p, "t", "SEED", "1"), SHMLINE_OK);
    EXPECT(shmline_pipeline_task_set_env(p, "t", "SEED", "2"), SHMLINE_OK);
    EXPECT(shmline_pipeline_task_set_output(p, "ghost", NULL, NULL), SHMLINE_NOT_FOUND);
    EXPECT(shmline_pipeline_task_set_output(p, NULL, NULL, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_task_set_output(p, "t", "/dev/null", NULL), SHMLINE_OK);

    /* Bindings: any target name is accepted until validation. */
    EXPECT(shmline_pipeline_bind(p, "t", 9, "out", "s"), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("SHMLINE_BINDING_READ");
    EXPECT(shmline_pipeline_bind(p, "ghost", SHMLINE_BINDING_WRITE, "out", "s"),
           SHMLINE_NOT_FOUND);
    EXPECT(shmline_pipeline_bind(p, "t", SHMLINE_BINDING_WRITE, NULL, "s"), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_bind(p, "t", SHMLINE_BINDING_WRITE, "out", NULL),
           SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_bind(p, "t", SHMLINE_BINDING_WRITE, "out", "s"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "t", SHMLINE_BINDING_READ, "in", "s"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "t", SHMLINE_BINDING_EVENT, "e", "e"), SHMLINE_OK);

    /* Pipeline settings. */
    EXPECT(shmline_pipeline_set_join_timeout(p, -1), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_pipeline_set_stop_grace(p, -1), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_pipeline_set_join_timeout(NULL, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_set_stop_grace(NULL, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_set_allow_cycles(NULL, 1), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_set_join_timeout(p, 0), SHMLINE_OK);
    EXPECT(shmline_pipeline_set_stop_grace(p, 1000000000), SHMLINE_OK);

    /* The task reads and writes the same stream (a cycle) and the join timeout is 0. */
    EXPECT(shmline_pipeline_validate(p), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("pipeline.join_timeout");
    EXPECT_MESSAGE("cycle");
    EXPECT(shmline_pipeline_set_allow_cycles(p, 1), SHMLINE_OK);
    EXPECT(shmline_pipeline_set_join_timeout(p, 30000000000LL), SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(p), SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(NULL), SHMLINE_NULL_POINTER);
    shmline_pipeline_close(p);
    shmline_pipeline_close(NULL);
}

static void test_validation_lists_every_problem_by_entry(void) {
    shmline_pipeline *p = declare("bad name!");
    add_bytes_stream(p, "orphan", 16);
    add_bytes_stream(p, "twice", 16);
    add_bytes_stream(p, "twice", 16);
    shmline_stream_options no_size = shmline_stream_options_default();
    EXPECT(shmline_pipeline_add_stream(p, "sizeless", &no_size), SHMLINE_OK);
    add_program(p, "reader", "true");
    EXPECT(shmline_pipeline_bind(p, "reader", SHMLINE_BINDING_READ, "input", "nowhere"),
           SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "reader", SHMLINE_BINDING_EVENT, "go", "no-event"),
           SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(p), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("pipeline.name");
    EXPECT_MESSAGE("streams.orphan");
    EXPECT_MESSAGE("streams.twice");
    EXPECT_MESSAGE("streams.sizeless");
    EXPECT_MESSAGE("tasks.reader.reads.input");
    EXPECT_MESSAGE("tasks.reader.events.go");
    /* Running, starting and saving validate first, and leave the report untouched. */
    shmline_run_report report;
    memset(&report, 0xAB, sizeof report);
    EXPECT(shmline_pipeline_run(p, &report), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("streams.orphan");
    CHECK(report.outcome == 0xABABABABu);
    shmline_run *run = (shmline_run *)&run;
    EXPECT(shmline_pipeline_start(p, &run), SHMLINE_INVALID_ARGUMENT);
    CHECK(run == NULL);
    EXPECT(shmline_pipeline_save(p, "/tmp/shmline-never-written.toml"), SHMLINE_INVALID_ARGUMENT);
    CHECK(access("/tmp/shmline-never-written.toml", F_OK) != 0);
    EXPECT(shmline_pipeline_run(NULL, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_start(NULL, &run), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_start(p, NULL), SHMLINE_NULL_POINTER);
    shmline_pipeline_close(p);
}

static void test_manifests_parse_save_and_load(void) {
    shmline_pipeline *p = (shmline_pipeline *)&p;
    EXPECT(shmline_pipeline_parse(NULL, &p), SHMLINE_NULL_POINTER);
    CHECK(p == NULL);
    EXPECT(shmline_pipeline_parse("[pipeline]\nname = \"x\"\n", NULL), SHMLINE_NULL_POINTER);
    /* A syntax error is reported with its line and column. */
    EXPECT(shmline_pipeline_parse("[pipeline]\nname = \"x\"\n\n[streams.s]\ncapacity = = 4\n", &p),
           SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("line 5");
    EXPECT_MESSAGE("column");
    CHECK(p == NULL);
    EXPECT(shmline_pipeline_parse("[pipeline]\nname = \"x\"\nbogus = 1\n", &p),
           SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("bogus");
    EXPECT(shmline_pipeline_parse("[streams.s]\nmax_frame_size = 8\n", &p),
           SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("[pipeline]: is missing");

    const char *name = unique("manifest");
    char text[1024];
    snprintf(text, sizeof text,
             "[pipeline]\n"
             "name = \"%s\"\n"
             "[streams.samples]\n"
             "dtype = \"<f4\"\n"
             "shape = [8]\n"
             "[events.go]\n"
             "mode = \"counting\"\n"
             "[tasks.source]\n"
             "command = \"./source\"\n"
             "writes = { out = \"samples\" }\n"
             "events = { go = \"go\" }\n"
             "[tasks.sink]\n"
             "command = \"./sink\"\n"
             "args = [\"--quiet\"]\n"
             "reads = { input = \"samples\" }\n",
             name);
    EXPECT(shmline_pipeline_parse(text, &p), SHMLINE_OK);
    CHECK(p != NULL && strcmp(shmline_pipeline_name(p), name) == 0);
    EXPECT(shmline_pipeline_validate(p), SHMLINE_OK);
    EXPECT(shmline_pipeline_add_event(p, "stop", SHMLINE_EVENT_FLAG), SHMLINE_OK);

    char path[256];
    snprintf(path, sizeof path, "/tmp/%s.toml", name);
    EXPECT(shmline_pipeline_save(p, path), SHMLINE_OK);
    EXPECT(shmline_pipeline_save(p, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_save(NULL, path), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_save(p, "/nonexistent-dir/x.toml"), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("/nonexistent-dir/x.toml");
    shmline_pipeline_close(p);

    /* What was saved loads back, with the event added in code. */
    shmline_pipeline *loaded = NULL;
    EXPECT(shmline_pipeline_load(path, &loaded), SHMLINE_OK);
    CHECK(loaded != NULL && strcmp(shmline_pipeline_name(loaded), name) == 0);
    EXPECT(shmline_pipeline_validate(loaded), SHMLINE_OK);
    FILE *f = fopen(path, "r");
    char saved[2048] = {0};
    CHECK(f != NULL && fread(saved, 1, sizeof saved - 1, f) > 0);
    if (f != NULL) {
        fclose(f);
    }
    CHECK(strstr(saved, "[events.stop]") != NULL);
    CHECK(strstr(saved, "mode = \"counting\"") != NULL);
    shmline_pipeline_close(loaded);
    unlink(path);

    loaded = (shmline_pipeline *)&loaded;
    EXPECT(shmline_pipeline_load("/nonexistent-dir/x.toml", &loaded), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("/nonexistent-dir/x.toml");
    CHECK(loaded == NULL);
    EXPECT(shmline_pipeline_load(NULL, &loaded), SHMLINE_NULL_POINTER);
}

static void test_group_inputs_and_several_writers_are_declared_validated_and_saved(void) {
    const char *name = unique("groups");
    shmline_pipeline *p = declare(name);
    add_bytes_stream(p, "samples", 16);
    shmline_stream_options o = shmline_stream_options_default();
    o.max_frame_size = PIPELINE_FRAME;
    o.max_writers = 2; /* an explicit limit: no more than two writing tasks */
    EXPECT(shmline_pipeline_add_stream(p, "merged", &o), SHMLINE_OK);
    add_program(p, "source", "true");
    add_program(p, "w0", "true");
    add_program(p, "w1", "true");
    add_program(p, "sink", "true");
    EXPECT(shmline_pipeline_bind(p, "source", SHMLINE_BINDING_WRITE, "out", "samples"),
           SHMLINE_OK);
    EXPECT(shmline_pipeline_bind_group(p, "w0", "input", "samples", "fir"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind_group(p, "w1", "input", "samples", "fir"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "w0", SHMLINE_BINDING_WRITE, "out", "merged"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "w1", SHMLINE_BINDING_WRITE, "out", "merged"), SHMLINE_OK);
    /* NULL or "" is a plain reader. */
    EXPECT(shmline_pipeline_bind_group(p, "sink", "input", "merged", NULL), SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(p), SHMLINE_OK);

    /* Argument checks. */
    EXPECT(shmline_pipeline_bind_group(NULL, "w0", "x", "samples", "g"), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_bind_group(p, "w0", NULL, "samples", "g"), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_bind_group(p, "w0", "x", NULL, "g"), SHMLINE_NULL_POINTER);
    EXPECT(shmline_pipeline_bind_group(p, "ghost", "x", "samples", "g"), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("its tasks are: source, w0, w1, sink");

    /* Saved as a manifest: the group is a table, the limit a key; it loads back valid. */
    char path[256];
    snprintf(path, sizeof path, "/tmp/%s.toml", name);
    EXPECT(shmline_pipeline_save(p, path), SHMLINE_OK);
    FILE *f = fopen(path, "r");
    char saved[4096] = {0};
    CHECK(f != NULL && fread(saved, 1, sizeof saved - 1, f) > 0);
    if (f != NULL) {
        fclose(f);
    }
    CHECK(strstr(saved, "group = \"fir\"") != NULL);
    CHECK(strstr(saved, "max_writers = 2") != NULL);
    shmline_pipeline *loaded = NULL;
    EXPECT(shmline_pipeline_load(path, &loaded), SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(loaded), SHMLINE_OK);
    shmline_pipeline_close(loaded);
    unlink(path);

    /* A third writer is more than the stream's max_writers; a bad group name and a task
     * reading a stream twice are refused, each named by its entry. */
    add_program(p, "w2", "true");
    EXPECT(shmline_pipeline_bind(p, "w2", SHMLINE_BINDING_WRITE, "out", "merged"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind_group(p, "w2", "input", "samples", "a/b"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind_group(p, "w2", "again", "samples", "fir"), SHMLINE_OK);
    EXPECT(shmline_pipeline_validate(p), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("streams.merged.max_writers: 2 is fewer than the 3 tasks that write");
    EXPECT_MESSAGE("tasks.w2.reads.input.group");
    EXPECT_MESSAGE("tasks.w2.reads.again: task \"w2\" already reads stream \"samples\"");
    shmline_pipeline_close(p);
}

static void test_joining_outside_a_pipeline_says_how_to_start(void) {
    unsetenv("SHMLINE_PIPELINE");
    unsetenv("SHMLINE_TASK");
    shmline_task *task = (shmline_task *)&task;
    EXPECT(shmline_task_join(NULL, NULL, &task), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("SHMLINE_PIPELINE is not set");
    EXPECT_MESSAGE("shmline run");
    CHECK(task == NULL);
    EXPECT(shmline_task_join("p", NULL, &task), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("SHMLINE_TASK is not set");
    EXPECT(shmline_task_join(unique("absent"), "t", &task), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("is not running");
    EXPECT(shmline_task_join("bad name!", "t", &task), SHMLINE_INVALID_NAME);
    EXPECT(shmline_task_join("p", "t", NULL), SHMLINE_NULL_POINTER);

    /* NULL task handles. */
    shmline_reader *reader = NULL;
    shmline_writer *writer = NULL;
    shmline_event *event = NULL;
    bool stop = false;
    EXPECT(shmline_task_reader(NULL, "in", NULL, &reader), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_writer(NULL, "out", NULL, &writer), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_event(NULL, "go", &event), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_stop_requested(NULL, &stop), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_wait_stop(NULL, 0), SHMLINE_NULL_POINTER);
    CHECK(shmline_task_name(NULL) == NULL);
    CHECK(shmline_task_pipeline_name(NULL) == NULL);
    shmline_task_close(NULL);
}

/* Checks a frame read from the feeder, a task_source program. */
static int is_source_frame(uint64_t seq, const unsigned char *data, const shmline_frame_info *info) {
    unsigned char expected[PIPELINE_FRAME];
    pipeline_payload(seq, expected);
    return info->seq == seq && info->len == PIPELINE_FRAME &&
           memcmp(data, expected, PIPELINE_FRAME) == 0;
}

static void test_a_task_takes_each_handle_once_by_parameter_name(void) {
    /* Task "me" is this process: the runner starts `sleep` for it, and we join in its place.
     * Task "feeder" is a task_source program writing 3 frames to stream "fed". */
    const char *name = unique("join");
    shmline_pipeline *p = declare(name);
    shmline_stream_options o = shmline_stream_options_default();
    static const uint64_t shape[1] = {PIPELINE_FRAME};
    o.dtype = "|u1";
    o.ndim = 1;
    o.shape = shape;
    EXPECT(shmline_pipeline_add_stream(p, "loop", &o), SHMLINE_OK);
    add_bytes_stream(p, "fed", 4);
    EXPECT(shmline_pipeline_add_event(p, "go", SHMLINE_EVENT_COUNTING), SHMLINE_OK);
    const char *sleeper[] = {"sleep", "600"};
    EXPECT(shmline_pipeline_add_task(p, "me", sleeper, 2), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_WRITE, "out", "loop"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_READ, "back", "loop"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_READ, "fed", "fed"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_EVENT, "go", "go"), SHMLINE_OK);
    add_program(p, "feeder", source_program);
    EXPECT(shmline_pipeline_task_set_env(p, "feeder", "FRAMES", "3"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "feeder", SHMLINE_BINDING_WRITE, "out", "fed"), SHMLINE_OK);
    EXPECT(shmline_pipeline_set_allow_cycles(p, 1), SHMLINE_OK);

    shmline_run *run = NULL;
    EXPECT(shmline_pipeline_start(p, &run), SHMLINE_OK);
    CHECK(run != NULL);
    /* The name is taken while it runs. */
    shmline_run *again = NULL;
    EXPECT(shmline_pipeline_start(p, &again), SHMLINE_ALREADY_EXISTS);
    EXPECT_MESSAGE("already running");
    CHECK(again == NULL);
    shmline_pipeline_close(p); /* the run has its own copy */

    shmline_task *task = NULL;
    EXPECT(shmline_task_join(name, "nobody", &task), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("its tasks are: me, feeder");
    EXPECT(shmline_task_join(name, "me", &task), SHMLINE_OK);
    if (task == NULL) {
        shmline_run_close(run);
        return;
    }
    CHECK(strcmp(shmline_task_name(task), "me") == 0);
    CHECK(strcmp(shmline_task_pipeline_name(task), name) == 0);
    shmline_task *twice = NULL;
    EXPECT(shmline_task_join(name, "me", &twice), SHMLINE_WRONG_STATE);
    CHECK(twice == NULL);

    /* Unknown parameters name the declared ones. */
    shmline_reader *back = (shmline_reader *)&back;
    EXPECT(shmline_task_reader(task, "nope", NULL, &back), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("its reads parameters are: back, fed");
    CHECK(back == NULL);
    shmline_writer *out = NULL;
    EXPECT(shmline_task_writer(task, "back", NULL, &out), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("its writes parameters are: out");
    shmline_event *go = NULL;
    EXPECT(shmline_task_event(task, "out", &go), SHMLINE_NOT_FOUND);
    EXPECT_MESSAGE("its events parameters are: go");
    EXPECT(shmline_task_reader(task, NULL, NULL, &back), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_reader(task, "back", NULL, NULL), SHMLINE_NULL_POINTER);

    /* Reader options: lossy is refused, a required schema is checked, and a refused reader stays
     * available. */
    shmline_reader_options ro = shmline_reader_options_default();
    ro.lossy = 1;
    EXPECT(shmline_task_reader(task, "back", &ro, &back), SHMLINE_UNSUPPORTED);
    EXPECT_MESSAGE("lossless");
    ro = shmline_reader_options_default();
    ro.wait = 9;
    EXPECT(shmline_task_reader(task, "back", &ro, &back), SHMLINE_INVALID_ARGUMENT);
    ro = shmline_reader_options_default();
    ro.struct_size = 0;
    EXPECT(shmline_task_reader(task, "back", &ro, &back), SHMLINE_INVALID_ARGUMENT);
    ro = shmline_reader_options_default();
    ro.require_dtype = "<f4";
    ro.require_ndim = 1;
    ro.require_shape = shape;
    EXPECT(shmline_task_reader(task, "back", &ro, &back), SHMLINE_SCHEMA_MISMATCH);
    ro.require_dtype = "|u1";
    ro.wait = SHMLINE_WAIT_BLOCK;
    ro.start = SHMLINE_START_NEWEST; /* attached at join: it reads every frame all the same */
    EXPECT(shmline_task_reader(task, "back", &ro, &back), SHMLINE_OK);
    CHECK(back != NULL);
    shmline_reader *again_reader = NULL;
    EXPECT(shmline_task_reader(task, "back", NULL, &again_reader), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("already been taken");

    shmline_writer_options wo = shmline_writer_options_default();
    wo.wait = 9;
    EXPECT(shmline_task_writer(task, "out", &wo, &out), SHMLINE_INVALID_ARGUMENT);
    wo.wait = SHMLINE_WAIT_BLOCK;
    EXPECT(shmline_task_writer(task, "out", &wo, &out), SHMLINE_OK);
    shmline_writer *again_writer = NULL;
    EXPECT(shmline_task_writer(task, "out", NULL, &again_writer), SHMLINE_WRONG_STATE);
    EXPECT(shmline_task_event(task, "go", &go), SHMLINE_OK);
    shmline_event *again_event = NULL;
    EXPECT(shmline_task_event(task, "go", &again_event), SHMLINE_WRONG_STATE);
    EXPECT(shmline_task_event(task, "go", NULL), SHMLINE_NULL_POINTER);

    /* The handles work: a frame goes round the loop, the event counts, the feeder's frames
     * arrive and its stream ends when it exits. */
    unsigned char frame[PIPELINE_FRAME], got[PIPELINE_FRAME];
    pipeline_payload(42, frame);
    shmline_frame_info info;
    EXPECT(shmline_writer_write(out, frame, sizeof frame, 7, PIPELINE_PATIENCE_NS), SHMLINE_OK);
    EXPECT(shmline_reader_read(back, got, sizeof got, PIPELINE_PATIENCE_NS, &info), SHMLINE_OK);
    CHECK(info.seq == 0 && info.flags == 7 && memcmp(got, frame, sizeof frame) == 0);
    EXPECT(shmline_event_set(go), SHMLINE_OK);
    uint32_t count = 0;
    EXPECT(shmline_event_count(go, &count), SHMLINE_OK);
    CHECK(count == 1);
    shmline_reader *fed = NULL;
    EXPECT(shmline_task_reader(task, "fed", NULL, &fed), SHMLINE_OK);
    for (uint64_t seq = 0; seq < 3; seq++) {
        EXPECT(shmline_reader_read(fed, got, sizeof got, PIPELINE_PATIENCE_NS, &info), SHMLINE_OK);
        CHECK(is_source_frame(seq, got, &info));
    }
    EXPECT(shmline_reader_read(fed, got, sizeof got, PIPELINE_PATIENCE_NS, &info),
           SHMLINE_END_OF_STREAM);

    /* The run while it goes: stream statistics, no task report yet. */
    CHECK(strcmp(shmline_run_stream_name(run, 0), "loop") == 0);
    CHECK(strcmp(shmline_run_stream_name(run, 1), "fed") == 0);
    CHECK(shmline_run_stream_name(run, 2) == NULL);
    CHECK(shmline_run_stream_name(NULL, 0) == NULL);
    shmline_stream_stats stats;
    EXPECT(shmline_run_stream_stats(run, 0, &stats), SHMLINE_OK);
    CHECK(stats.frames_written == 1 && stats.writer_state == SHMLINE_WRITER_STATE_ACTIVE);
    EXPECT(shmline_run_stream_stats(run, 1, &stats), SHMLINE_OK);
    CHECK(stats.frames_written == 3 && stats.writer_state == SHMLINE_WRITER_STATE_CLOSED);
    EXPECT(shmline_run_stream_stats(run, 2, &stats), SHMLINE_INVALID_ARGUMENT);
    EXPECT_MESSAGE("has 2 streams");
    EXPECT(shmline_run_stream_stats(NULL, 0, &stats), SHMLINE_NULL_POINTER);
    EXPECT(shmline_run_stream_stats(run, 0, NULL), SHMLINE_NULL_POINTER);
    shmline_task_report task_report;
    EXPECT(shmline_run_task_report(run, 0, &task_report), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("shmline_run_wait");
    shmline_run_report report;
    EXPECT(shmline_run_wait(run, 0, &report), SHMLINE_TIMEOUT);
    EXPECT(shmline_run_wait(NULL, 0, &report), SHMLINE_NULL_POINTER);

    /* No stop yet; then the run is stopped and the task sees it. */
    bool stop = true;
    EXPECT(shmline_task_stop_requested(task, &stop), SHMLINE_OK);
    CHECK(!stop);
    EXPECT(shmline_task_stop_requested(task, NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_wait_stop(task, 0), SHMLINE_EMPTY);
    EXPECT(shmline_task_wait_stop(task, 1000000), SHMLINE_TIMEOUT);
    EXPECT(shmline_run_stop(run), SHMLINE_OK);
    EXPECT(shmline_run_stop(NULL), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_wait_stop(task, PIPELINE_PATIENCE_NS), SHMLINE_OK);
    EXPECT(shmline_task_stop_requested(task, &stop), SHMLINE_OK);
    CHECK(stop);

    /* Stopped on request: not a failure. Waiting again gives the same answer. */
    EXPECT(shmline_run_wait(run, SHMLINE_TIMEOUT_INFINITE, &report), SHMLINE_OK);
    CHECK(report.outcome == SHMLINE_RUN_STOPPED && report.signal == 0);
    CHECK(report.stream_count == 2 && report.task_count == 2);
    CHECK(report.frames == 4 && report.bytes == 4 * PIPELINE_FRAME);
    CHECK(report.duration_ns >= report.running_ns && report.running_ns > 0);
    memset(&report, 0, sizeof report);
    EXPECT(shmline_run_wait(run, 0, &report), SHMLINE_OK);
    CHECK(report.outcome == SHMLINE_RUN_STOPPED && report.task_count == 2);
    EXPECT(shmline_run_wait(run, 0, NULL), SHMLINE_OK);
    /* "me" (sleep) was stopped by SIGTERM; the feeder finished on its own (it may still have
     * been running, after closing its stream, when the stop began). */
    EXPECT(shmline_run_task_report(run, 0, &task_report), SHMLINE_OK);
    CHECK(task_report.stopped && task_report.pid != 0);
    CHECK(task_report.exit_kind == SHMLINE_EXIT_SIGNAL && task_report.exit_value == 15);
    EXPECT(shmline_run_task_report(run, 1, &task_report), SHMLINE_OK);
    CHECK(task_report.exit_kind == SHMLINE_EXIT_CODE && task_report.exit_value == 0);
    EXPECT(shmline_run_task_report(run, 2, &task_report), SHMLINE_INVALID_ARGUMENT);
    EXPECT(shmline_run_task_report(run, 0, NULL), SHMLINE_NULL_POINTER);
    /* The final counts stay readable after the segments are gone. */
    EXPECT(shmline_run_stream_stats(run, 1, &stats), SHMLINE_OK);
    CHECK(stats.frames_written == 3);

    /* Handles taken from the task outlive it. */
    shmline_task_close(task);
    EXPECT(shmline_writer_write(out, frame, sizeof frame, 0, 0), SHMLINE_OK);
    shmline_writer_close(out);
    shmline_reader_close(back);
    shmline_reader_close(fed);
    shmline_event_close(go);
    shmline_run_close(run);
    shmline_run_close(NULL);
}

/* Polls the run's stream `index` until its writer has closed it; false after the patience. */
static bool wait_stream_closed(shmline_run *run, size_t index) {
    struct timespec ms = {0, 1000000};
    for (long waited = 0; waited < PIPELINE_PATIENCE_NS / 1000000; waited++) {
        shmline_stream_stats stats;
        if (shmline_run_stream_stats(run, index, &stats) == SHMLINE_OK &&
            stats.writer_state == SHMLINE_WRITER_STATE_CLOSED) {
            return true;
        }
        nanosleep(&ms, NULL);
    }
    return false;
}

static void test_a_task_ending_on_one_inputs_end_learns_which_inputs_still_had_frames(void) {
    /* Task "me" is this process (the runner starts `sleep` for it), reading "a" (2 frames) and
     * "b" (5 frames), each fed by a task_source program. */
    const char *name = unique("inputs");
    shmline_pipeline *p = declare(name);
    add_bytes_stream(p, "a", 8);
    add_bytes_stream(p, "b", 8);
    const char *sleeper[] = {"sleep", "600"};
    EXPECT(shmline_pipeline_add_task(p, "me", sleeper, 2), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_READ, "a", "a"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "me", SHMLINE_BINDING_READ, "b", "b"), SHMLINE_OK);
    add_program(p, "feed_a", source_program);
    EXPECT(shmline_pipeline_task_set_env(p, "feed_a", "FRAMES", "2"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "feed_a", SHMLINE_BINDING_WRITE, "out", "a"), SHMLINE_OK);
    add_program(p, "feed_b", source_program);
    EXPECT(shmline_pipeline_task_set_env(p, "feed_b", "FRAMES", "5"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "feed_b", SHMLINE_BINDING_WRITE, "out", "b"), SHMLINE_OK);
    shmline_run *run = NULL;
    EXPECT(shmline_pipeline_start(p, &run), SHMLINE_OK);
    shmline_pipeline_close(p);
    shmline_task *task = NULL;
    EXPECT(shmline_task_join(name, "me", &task), SHMLINE_OK);
    shmline_reader *readers[2] = {NULL, NULL};
    const char *params[2] = {"a", "b"};
    if (task != NULL) {
        EXPECT(shmline_task_reader(task, "a", NULL, &readers[0]), SHMLINE_OK);
        EXPECT(shmline_task_reader(task, "b", NULL, &readers[1]), SHMLINE_OK);
        shmline_task_close(task);
    }
    if (readers[0] == NULL || readers[1] == NULL) {
        shmline_run_close(run);
        return;
    }
    const shmline_reader *const *inputs = (const shmline_reader *const *)readers;
    unsigned char got[PIPELINE_FRAME];
    shmline_frame_info info;
    EXPECT(shmline_reader_read(readers[0], got, sizeof got, PIPELINE_PATIENCE_NS, &info),
           SHMLINE_OK);
    /* Both feeders have written everything: a holds 1 frame unread, b all 5. */
    CHECK(wait_stream_closed(run, 0) && wait_stream_closed(run, 1));
    EXPECT(shmline_task_check_inputs(name, "me", inputs, params, 2, 0), SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("\"a\" still had 1 frame unread and \"b\" still had 5 frames unread");
    EXPECT(shmline_reader_read(readers[0], got, sizeof got, PIPELINE_PATIENCE_NS, &info),
           SHMLINE_OK);
    EXPECT(shmline_reader_read(readers[0], got, sizeof got, PIPELINE_PATIENCE_NS, &info),
           SHMLINE_END_OF_STREAM);
    EXPECT(shmline_task_check_inputs(name, "me", inputs, params, 2, PIPELINE_PATIENCE_NS),
           SHMLINE_WRONG_STATE);
    EXPECT_MESSAGE("task \"me\" ended on end of stream of \"a\" while \"b\" still had 5 frames "
                   "unread");
    /* Only the inputs given are judged; none is a normal end. */
    EXPECT(shmline_task_check_inputs(name, "me", inputs, params, 1, 0), SHMLINE_OK);
    EXPECT(shmline_task_check_inputs(name, "me", NULL, NULL, 0, 0), SHMLINE_OK);
    EXPECT(shmline_task_check_inputs(name, "me", NULL, params, 2, 0), SHMLINE_NULL_POINTER);
    EXPECT(shmline_task_check_inputs(name, "me", inputs, NULL, 2, 0), SHMLINE_NULL_POINTER);
    for (int i = 0; i < 5; i++) {
        EXPECT(shmline_reader_read(readers[1], got, sizeof got, PIPELINE_PATIENCE_NS, &info),
               SHMLINE_OK);
    }
    EXPECT(shmline_reader_read(readers[1], got, sizeof got, PIPELINE_PATIENCE_NS, &info),
           SHMLINE_END_OF_STREAM);
    EXPECT(shmline_task_check_inputs(name, "me", inputs, params, 2, 0), SHMLINE_OK);

    EXPECT(shmline_run_stop(run), SHMLINE_OK);
    shmline_run_report report;
    EXPECT(shmline_run_wait(run, SHMLINE_TIMEOUT_INFINITE, &report), SHMLINE_OK);
    shmline_reader_close(readers[0]);
    shmline_reader_close(readers[1]);
    shmline_run_close(run);
}

static void test_c_tasks_run_to_completion_with_every_frame_verified(void) {
    shmline_pipeline *p = declare(unique("run"));
    add_bytes_stream(p, "samples", 16);
    add_bytes_stream(p, "doubled", 16);
    add_program(p, "source", source_program);
    EXPECT(shmline_pipeline_task_set_env(p, "source", "FRAMES", "3000"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "source", SHMLINE_BINDING_WRITE, "out", "samples"),
           SHMLINE_OK);
    add_program(p, "scale", scale_program);
    EXPECT(shmline_pipeline_bind(p, "scale", SHMLINE_BINDING_READ, "input", "samples"),
           SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "scale", SHMLINE_BINDING_WRITE, "out", "doubled"),
           SHMLINE_OK);
    add_program(p, "sink", sink_program);
    EXPECT(shmline_pipeline_task_set_env(p, "sink", "FRAMES", "3000"), SHMLINE_OK);
    EXPECT(shmline_pipeline_task_set_output(p, "sink", "/dev/null", NULL), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "sink", SHMLINE_BINDING_READ, "input", "doubled"),
           SHMLINE_OK);

    shmline_run_report report;
    EXPECT(shmline_pipeline_run(p, &report), SHMLINE_OK);
    CHECK(report.outcome == SHMLINE_RUN_FINISHED && report.signal == 0);
    CHECK(report.frames == 2 * 3000 && report.bytes == 2 * 3000 * PIPELINE_FRAME);
    CHECK(report.stream_count == 2 && report.task_count == 3 && report.running_ns > 0);
    /* A report is optional; the same declaration runs again. */
    EXPECT(shmline_pipeline_run(p, NULL), SHMLINE_OK);
    shmline_pipeline_close(p);
}

static void test_a_failing_task_fails_the_run_by_name_and_the_others_are_stopped(void) {
    shmline_pipeline *p = declare(unique("fail"));
    add_bytes_stream(p, "s", 16);
    const char *failing[] = {"sh", "-c", "exit 3"};
    EXPECT(shmline_pipeline_add_task(p, "failing", failing, 3), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "failing", SHMLINE_BINDING_WRITE, "out", "s"), SHMLINE_OK);
    add_program(p, "sink", sink_program);
    EXPECT(shmline_pipeline_task_set_output(p, "sink", "/dev/null", "/dev/null"), SHMLINE_OK);
    EXPECT(shmline_pipeline_bind(p, "sink", SHMLINE_BINDING_READ, "input", "s"), SHMLINE_OK);

    shmline_run_report report;
    EXPECT(shmline_pipeline_run(p, &report), SHMLINE_PIPELINE_FAILED);
    EXPECT_MESSAGE("task \"failing\"");
    EXPECT_MESSAGE("exit status 3");
    CHECK(report.outcome == SHMLINE_RUN_FAILED && report.frames == 0 && report.task_count == 2);

    /* The same through a run handle, with the tasks' reports. */
    shmline_run *run = NULL;
    EXPECT(shmline_pipeline_start(p, &run), SHMLINE_OK);
    EXPECT(shmline_run_wait(run, SHMLINE_TIMEOUT_INFINITE, &report), SHMLINE_PIPELINE_FAILED);
    EXPECT_MESSAGE("exit status 3");
    shmline_task_report failed_task, stopped_task;
    EXPECT(shmline_run_task_report(run, 0, &failed_task), SHMLINE_OK);
    CHECK(!failed_task.stopped && failed_task.exit_kind == SHMLINE_EXIT_CODE &&
          failed_task.exit_value == 3);
    EXPECT(shmline_run_task_report(run, 1, &stopped_task), SHMLINE_OK);
    CHECK(stopped_task.stopped);
    shmline_run_close(run);
    shmline_pipeline_close(p);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: test_pipeline NAME_PREFIX SOURCE SCALE SINK\n");
        return 2;
    }
    prefix = argv[1];
    source_program = argv[2];
    scale_program = argv[3];
    sink_program = argv[4];
    test_declarations_check_their_arguments();
    test_validation_lists_every_problem_by_entry();
    test_manifests_parse_save_and_load();
    test_group_inputs_and_several_writers_are_declared_validated_and_saved();
    test_joining_outside_a_pipeline_says_how_to_start();
    test_a_task_takes_each_handle_once_by_parameter_name();
    test_a_task_ending_on_one_inputs_end_learns_which_inputs_still_had_frames();
    test_c_tasks_run_to_completion_with_every_frame_verified();
    test_a_failing_task_fails_the_run_by_name_and_the_others_are_stopped();
    return check_summary();
}
