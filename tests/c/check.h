/* The checking harness of the C API tests: CHECK a condition, EXPECT a status (a failure must
 * leave a message), EXPECT_MESSAGE a text in the last error message. Failures are printed with
 * their file, line and the last error message; the program ends with `check_summary()`, which
 * prints "N passed, N failed" (what tests/c_abi.rs looks for) and gives the exit status. */
#ifndef SHMLINE_TEST_CHECK_H
#define SHMLINE_TEST_CHECK_H

#include "shmline.h"

#include <stdio.h>
#include <string.h>

static int passed, failed;

static void check_report(int ok, const char *file, int line, const char *what) {
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", file, line, what,
            shmline_last_error_message());
}

/* Checks a condition. */
#define CHECK(cond) check_report((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* Checks that a call returns `expected`, and that any failure leaves a non-empty message. */
#define EXPECT(call, expected) expect_status((call), (expected), __FILE__, __LINE__, #call)

static void expect_status(int32_t got, int32_t expected, const char *file, int line,
                          const char *call) {
    char what[512];
    if (got != expected) {
        snprintf(what, sizeof what, "%s returned %s, expected %s", call, shmline_status_str(got),
                 shmline_status_str(expected));
        check_report(0, file, line, what);
    } else if (got != SHMLINE_OK && shmline_last_error_message()[0] == '\0') {
        snprintf(what, sizeof what, "%s returned %s with no message", call,
                 shmline_status_str(got));
        check_report(0, file, line, what);
    } else {
        check_report(1, file, line, call);
    }
}

/* Checks that the last error message contains `text`. */
#define EXPECT_MESSAGE(text) \
    check_report(strstr(shmline_last_error_message(), (text)) != NULL, __FILE__, __LINE__, \
           "the last error message mentions \"" text "\"")

/* Prints the totals; returns the exit status of the test program. */
static int check_summary(void) {
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
