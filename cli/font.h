/* font.h: a 5 x 7 bitmap font for the printable ASCII characters
 * (cli/font.c), for text in raster pictures. */
#ifndef SPAT_FONT_H
#define SPAT_FONT_H

#include <stdbool.h>

enum { FONT_W = 5, FONT_H = 7, FONT_FIRST = 32, FONT_LAST = 126 };

/* Whether pixel (x, y) of character c's glyph is ink (x < FONT_W, y <
 * FONT_H, y down); a character outside printable ASCII draws as '?'. */
bool font_pixel(char c, int x, int y);

#endif
