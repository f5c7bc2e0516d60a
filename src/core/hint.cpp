#include "hint.hpp"

#include <cstring>

namespace rr {

namespace {

// Length of the valid UTF-8 sequence at p (at most `left` bytes), 0 if invalid.
std::size_t utf8_len(const unsigned char *p, std::size_t left) noexcept
{
    unsigned char c = p[0];
    std::size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) || (c == 0xF0 && p[1] < 0x90) ||
        (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return n;
}

} // namespace

void copy_str(char *dst, std::size_t cap, const char *src) noexcept
{
    if (cap == 0)
        return;
    std::size_t out = 0;
    if (src != nullptr) {
        const auto *p = reinterpret_cast<const unsigned char *>(src);
        std::size_t left = std::strlen(src);
        while (left > 0) {
            std::size_t n = utf8_len(p, left);
            bool control = n == 1 ? (p[0] < 0x20 || p[0] == 0x7F)
                                  : n == 2 && p[0] == 0xC2 && p[1] < 0xA0; // C1 controls
            if (n == 0 || control) {
                // A stand-in the same in every client encoding.
                if (out + 1 >= cap)
                    break;
                dst[out++] = '?';
                p += n == 0 ? 1 : n;
                left -= n == 0 ? 1 : n;
                continue;
            }
            if (out + n >= cap)
                break;  // cut before a character, never inside one
            std::memcpy(dst + out, p, n);
            out += n;
            p += n;
            left -= n;
        }
    }
    dst[out] = '\0';
}

} // namespace rr
