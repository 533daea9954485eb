#include <zlib.h>

/* zlib's init functions are macros over *_ () with version and struct size; Swift cannot call
   macros, so these inline wrappers do (windowBits 15 + 16: a gzip stream, no zlib or raw). */
static inline int caisson_inflate_init_gzip(z_streamp strm) {
    return inflateInit2(strm, 15 + 16);
}

static inline int caisson_deflate_init_gzip(z_streamp strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
