"""A Python program that joins its pipeline by hand (`shmline.Task`), as a program in any
language does, started by the runner as `cmd=[python, py_task.py]`: it doubles every float64
frame of its reading parameter `samples` into its writing parameter `doubled`, until the stream
ends."""

import shmline

with shmline.Task.join() as task:  # SHMLINE_PIPELINE and SHMLINE_TASK, from the runner
    samples = task.reader("samples")
    doubled = task.writer("doubled")
for frame in samples:
    doubled.write(frame * 2.0)
doubled.close()  # ends the stream for the task downstream
print(f"task {task.name} of pipeline {task.pipeline} is done", flush=True)
