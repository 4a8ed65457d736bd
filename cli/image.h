/* image.h: pictures of a mask a person can read (spatc mask --format
 * png|svg): a title, axes with tick labels, separators between heads, a
 * legend, and optionally the kernel's tile plan under the mask.
 *
 * The mask is rows x cols cells, row-major, each a class: 0 not allowed,
 * 1 .. n_classes - 1 allowed and coloured (one class for a plain mask;
 * three for a diff: only A, only B, both).  Large masks are downsampled to
 * at most max_px pixels a side, a pixel's shade showing the fraction of
 * allowed pairs it covers (its colour their classes' mix); small ones are
 * scaled up so a cell is visible.  PNG is RGB, deflated with zlib, and
 * carries a tEXt chunk "spatc" = "plot x=X y=Y w=W h=H rows=R cols=C
 * cell=N" saying where the plot lies (cell 0: downsampled) for tools and
 * tests. */
#ifndef SPAT_IMAGE_H
#define SPAT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum { IMAGE_MAX_CLASSES = 4 };

/* Tile classes (spat_kernel_tiles's SPAT_TILE_*). */
enum { IMAGE_TILE_SKIPPED = 0, IMAGE_TILE_PARTIAL = 1, IMAGE_TILE_FULL = 2 };

typedef struct image_spec {
  const uint8_t *cells;      /* rows x cols classes */
  int64_t rows, cols;
  int64_t heads;             /* rows = heads * (rows of a head); >= 1 */
  const char *title;         /* NULL: "mask" */
  int n_classes;             /* 2 .. IMAGE_MAX_CLASSES */
  const uint8_t (*colour)[3];/* [n_classes]: colour of each class (0 unused) */
  const char *const *label;  /* NULL, or [n_classes]: legend labels */
  /* NULL, or the tile plan: per head, ceil(rows/heads / tile_q) x
   * ceil(cols / tile_k) IMAGE_TILE_* values, drawn under the mask */
  const uint8_t *tiles;
  int64_t tile_q, tile_k;
  int max_px;                /* <= 0: 1024 */
} image_spec;

/* Classes and colours of a plain mask: 0 paper, 1 ink. */
extern const uint8_t image_ink[2][3];
/* Of a diff: 1 only A, 2 only B, 3 both. */
extern const uint8_t image_diff[4][3];

int image_write_png(const char *path, const image_spec *s, char *err,
                    size_t errlen);
int image_write_svg(const char *path, const image_spec *s, char *err,
                    size_t errlen);

#endif
