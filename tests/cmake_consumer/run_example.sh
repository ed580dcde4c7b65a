#!/bin/sh
# Runs a quick-start pair as its comments say: the reader in the background, then the writer.
# Passes when both exit 0 and the reader printed the last frame.
#
# Usage: run_example.sh READER WRITER NAME_PREFIX   (the stream is NAME_PREFIX-<pid>)
set -u
reader=$1
writer=$2
name="$3-$$"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$reader" "$name" >"$out" &
reader_pid=$!
"$writer" "$name"
writer_status=$?
wait "$reader_pid"
reader_status=$?
cat "$out"

if [ "$writer_status" -ne 0 ] || [ "$reader_status" -ne 0 ]; then
    echo "writer exited with $writer_status, reader with $reader_status" >&2
    exit 1
fi
grep -q "^frame 9: hello 9$" "$out" || { echo "the reader did not print the last frame" >&2; exit 1; }
