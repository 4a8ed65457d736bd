/* image.h: pictures of a mask a person can read (spatc mask --format png|svg).
 * The mask is rows x cols bytes (nonzero = allowed), row-major.  Large masks
 * are downsampled to at most max_px pixels a side, a pixel's shade showing
 * the fraction of allowed pairs it covers; small ones are scaled up so a
 * cell is visible.  PNG is written without zlib (stored deflate blocks). */
#ifndef SPAT_IMAGE_H
#define SPAT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

int image_write_png(const char *path, const uint8_t *mask, int64_t rows,
                    int64_t cols, int max_px, char *err, size_t errlen);
int image_write_svg(const char *path, const uint8_t *mask, int64_t rows,
                    int64_t cols, int max_px, const char *title, char *err,
                    size_t errlen);

#endif
