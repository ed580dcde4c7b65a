// shmline quick start in C++, the writer: creates a stream, waits for a reader, sends ten text
// frames (copied) and a last one written in place (zero-copy), then ends the stream.
//
//   CMake: target_link_libraries(writer PRIVATE shmline::cpp)
//   ./reader & ./writer
//
// Usage: writer [STREAM_NAME]   (default "quickstart-cpp"; reader.cpp must use the same name)
#include <shmline/shmline.hpp>

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>

int main(int argc, char** argv) try {
    const std::string name = argc > 1 ? argv[1] : "quickstart-cpp";

    shmline::StreamOptions options;
    options.max_frame_size = 256;    // largest frame in bytes (or give a schema)
    options.unlink_on_close = true;  // remove the name from /dev/shm once we are done
    shmline::Stream stream = shmline::Stream::create(name, options);  // throws shmline::Error
    shmline::Writer writer = stream.writer();

    // A reader sees the frames written after it opened: wait until one is there.
    if (!writer.wait_for_readers(1, std::chrono::seconds(30))) {
        std::cerr << "writer: no reader came\n";
        return 1;
    }
    for (int i = 0; i < 10; i++) {
        const std::string text = "hello " + std::to_string(i);
        // Copies the frame into shared memory; waits while the reader is a whole ring behind.
        // The status says whether the frame went in (Ok) or not (Timeout, or Full on a "fail"
        // stream): the compiler refuses to let it be ignored.
        const shmline::Status status = writer.write(text.data(), text.size());
        if (status != shmline::Status::Ok) {
            std::cerr << "writer: frame " << i << " not written: " << shmline::status_name(status)
                      << "\n";
            return 1;
        }
    }
    {
        // Zero-copy: fill the slot in shared memory; it is published when `slot` goes out of
        // scope (or dropped, if an exception leaves the scope first).
        shmline::WriteSlot slot = writer.reserve();
        const std::string text = "goodbye";
        std::memcpy(slot.data(), text.data(), text.size());
        slot.set_length(text.size());
    }
    return 0;  // the destructors close the writer (end of stream) and the stream
} catch (const shmline::Error& e) {
    std::cerr << "writer: " << e.what() << '\n';
    return 1;
}
