// shmline quick start in C++, the reader: opens the stream the writer creates and prints every
// frame, reading each in place (zero-copy), until the writer ends the stream.
//
//   CMake: target_link_libraries(reader PRIVATE shmline::cpp)
//   ./reader & ./writer
//
// Usage: reader [STREAM_NAME]   (default "quickstart-cpp", as in writer.cpp)
#include <shmline/shmline.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

// Opens the stream `name`, retrying while its writer has not created it yet (up to `patience`).
static shmline::Stream open_when_created(const std::string& name, std::chrono::seconds patience) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    for (;;) {
        try {
            return shmline::Stream::open(name);
        } catch (const shmline::Error& e) {
            if (e.status() != shmline::Status::NotFound || std::chrono::steady_clock::now() > deadline) {
                throw;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

int main(int argc, char** argv) try {
    const std::string name = argc > 1 ? argv[1] : "quickstart-cpp";
    shmline::Reader reader = open_when_created(name, std::chrono::seconds(30)).reader();
    // The reader keeps the stream mapped: the temporary Stream handle is already closed.

    for (;;) {
        // Blocks until the next frame; the frame stays in shared memory, lent to us until
        // `frame` goes out of scope at the end of this iteration.
        shmline::ReadSlot frame = reader.acquire();
        if (!frame) {
            // No frame: the writer ended the stream (or died: Status::WriterDead).
            return frame.status() == shmline::Status::EndOfStream ? 0 : 1;
        }
        const std::string_view text(reinterpret_cast<const char*>(frame.data()), frame.size());
        std::cout << "frame " << frame.info().seq << ": " << text << '\n';
    }
} catch (const shmline::Error& e) {
    std::cerr << "reader: " << e.what() << '\n';
    return 1;
}
