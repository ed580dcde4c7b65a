// Compiles <shmline/shmline.hpp> under more warnings than the tests use (-Wconversion,
// -Wsign-conversion, -Wshadow, -Wold-style-cast...; see tests/cmake_consumer/CMakeLists.txt), so
// that users with strict flags can include it. Every inline function is checked as it is parsed;
// the C++17 Span template is instantiated explicitly.
#include <shmline/shmline.hpp>

#if !defined(SHMLINE_HAS_STD_SPAN)
template class shmline::Span<const std::byte>;
template class shmline::Span<std::byte>;
template class shmline::Span<const std::size_t>;
template class shmline::Span<shmline::FrameInfo>;
#endif
