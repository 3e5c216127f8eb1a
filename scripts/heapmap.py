#!/usr/bin/env python3
"""scripts/heapmap.py - draws spanalloc's heap map (kmem_heapmap()) as a PNG.

    heapmap.py [DUMP|-] [-o heapmap.png] [--cols N] [--title TEXT]

DUMP is the text kmem_heapmap() emits (format: the top of mm/heapmap.c),
from a file or stdin.  A serial log works too: anything before the record
on a line ("heapmap: ", a timestamp) is skipped, lines without a record are
ignored, and of several dumps the last complete one is drawn.

The picture: one panel per 64 MiB arena, a grid of pages (each row is
--cols pages, 256 = 1 MiB by default; physical addresses on the left).
Pages are coloured by use: free (white), not managed (grey), the metadata
region (near black), metadata pages taken from the pool (slate), large
objects (orange), page runs (red), and small-object spans by object size
(kmalloc classes on a blue-green-yellow scale, each object cache in a
colour of its own).  In a span's pages the solid part is the share of its
objects that are live; the pale rest is free slots.  Neighbouring large
objects and runs alternate two shades so their borders show.  A side panel
gives, per size class and cache, the span memory held and the share of it
live.  The title carries the totals.
"""
import argparse
import math
import re
import sys

KEYWORDS = ('heapmap', 'meta', 'arena', 'free', 'small', 'large', 'run', 'metapages', 'end')
RECORD = re.compile(r'(?:^|[\s:])(%s)(?=\s|$)(.*)$' % '|'.join(KEYWORDS))
ARENA_PAGES = 16384

# Colours.
C_UNMANAGED = (0.83, 0.83, 0.83)
C_FREE = (1.0, 1.0, 1.0)
C_META = (0.15, 0.20, 0.22)
C_METAPAGES = (0.38, 0.49, 0.55)
C_LARGE = ((0.95, 0.50, 0.05), (0.99, 0.68, 0.35))
C_RUN = ((0.80, 0.13, 0.15), (0.93, 0.42, 0.42))
CACHE_COLOURS = [(0.89, 0.47, 0.76), (0.55, 0.34, 0.29), (0.74, 0.74, 0.13),
                 (0.58, 0.40, 0.74), (0.09, 0.75, 0.81), (0.50, 0.50, 0.50)]
TINT = 0.78  # how far free slots are washed toward white


class DumpError(Exception):
    pass


def parse(lines):
    """Returns the last complete dump in lines as a dict, or raises."""
    dumps, cur = [], None
    for raw in lines:
        m = None
        for cand in RECORD.finditer(raw.rstrip('\r\n')):
            m = cand
            break
        if not m:
            continue
        word, rest = m.group(1), m.group(2).split()
        try:
            if word == 'heapmap':
                if not rest or rest[0] != '1':
                    continue
                kv = dict(f.split('=', 1) for f in rest[1:] if '=' in f)
                cur = {'page': int(kv.get('page', '4096')), 'offset': int(kv.get('offset', '0'), 16),
                       'meta': [], 'arenas': [], 'recs': []}
                continue
            if cur is None:
                continue
            if word == 'end':
                dumps.append(cur)
                cur = None
            elif word == 'meta':
                cur['meta'].append((int(rest[0], 16), int(rest[1])))
            elif word == 'arena':
                cur['arenas'].append((int(rest[0], 16), int(rest[1])))
            elif word == 'small':
                cur['recs'].append({'kind': 'small', 'phys': int(rest[0], 16), 'pages': int(rest[1]),
                                    'cls': int(rest[2]), 'size': int(rest[3]), 'live': int(rest[4]),
                                    'objects': int(rest[5]), 'cache': rest[6] if len(rest) > 6 else '-'})
            else:
                cur['recs'].append({'kind': word, 'phys': int(rest[0], 16), 'pages': int(rest[1])})
        except (IndexError, ValueError):
            continue  # a garbled line (e.g. interleaved serial output)
    if not dumps:
        raise DumpError('no complete heap map (from "heapmap 1" to "end") in the input')
    return dumps[-1]


def class_colour(size, cmap):
    # log2 of 8 B .. 32 KiB onto the colour map
    t = (math.log2(max(size, 8)) - 3) / 12.0
    r, g, b, _ = cmap(0.05 + 0.9 * min(max(t, 0.0), 1.0))
    return (r, g, b)


def tint(c, k=TINT):
    return tuple(x + (1.0 - x) * k for x in c)


def mib(nbytes):
    return nbytes / float(1 << 20)


def fmt_size(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return '%d MiB' % (n >> 20)
    if n >= 1024 and n % 1024 == 0:
        return '%d KiB' % (n >> 10)
    return '%d B' % n


def render(d, out, cols=256, title=None):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    import numpy as np

    page = d['page']
    cmap = plt.get_cmap('viridis')
    arenas = sorted(d['arenas'])
    if not arenas:
        raise DumpError('the dump has no arena')
    arena_bytes = ARENA_PAGES * page
    caches = sorted({r['cache'] for r in d['recs'] if r['kind'] == 'small' and r['cache'] != '-'})
    cache_col = {c: CACHE_COLOURS[i % len(CACHE_COLOURS)] for i, c in enumerate(caches)}

    # Each page is a CW x CH pixel cell; a span's live share fills its cells
    # from the bottom.
    CW, CH = max(1, 1024 // cols), 10
    rows = ARENA_PAGES // cols
    imgs = []
    seen = [np.zeros(rows, dtype=bool) for _ in arenas]  # rows with memory the heap knows
    totals = {'free': 0, 'small': 0, 'large': 0, 'run': 0, 'metapages': 0}
    per_class = {}  # key -> [size, label, colour, span bytes, live bytes, spans]
    for base, _managed in arenas:
        img = np.empty((rows * CH, cols * CW, 3))
        img[:, :] = C_UNMANAGED
        imgs.append((base, img))

    def arena_index(pfn):
        for i, (base, _) in enumerate(arenas):
            if base // page <= pfn < base // page + ARENA_PAGES:
                return i
        return None

    def paint(first_pfn, npages, colour, fill=1.0, pale=None, mark=False):
        """Cells of pages [first_pfn, +npages): the bottom `fill` of each
        cell solid, the rest `pale`; with mark, the first page's left edge
        darker (where a span starts)."""
        solid_h = int(round(fill * CH))
        if fill > 0 and solid_h == 0:
            solid_h = 1
        for pfn in range(first_pfn, first_pfn + npages):
            ai = arena_index(pfn)
            if ai is None:
                continue
            img = imgs[ai][1]
            i = pfn - arenas[ai][0] // page
            r, c = divmod(i, cols)
            seen[ai][r] = True
            y0, x0 = r * CH, c * CW
            cell = img[y0:y0 + CH, x0:x0 + CW]
            if pale is None or solid_h >= CH:
                cell[:, :] = colour
            else:
                cell[:, :] = pale
                if solid_h:
                    cell[CH - solid_h:, :] = colour
            if mark and pfn == first_pfn and CW > 2:
                cell[:, 0] = tuple(0.6 * x for x in colour)

    for mphys, mbytes in d['meta']:
        paint(mphys // page, (mbytes + page - 1) // page, C_META)
    alt = {'large': 0, 'run': 0}
    prev_end = {'large': None, 'run': None}
    for r in d['recs']:
        k, pfn, n = r['kind'], r['phys'] // page, r['pages']
        totals[k] = totals.get(k, 0) + n
        if k == 'free':
            paint(pfn, n, C_FREE)
        elif k == 'metapages':
            paint(pfn, n, C_METAPAGES)
        elif k in ('large', 'run'):
            alt[k] = alt[k] ^ 1 if prev_end[k] == pfn else 0
            prev_end[k] = pfn + n
            paint(pfn, n, (C_LARGE if k == 'large' else C_RUN)[alt[k]], mark=True)
        elif k == 'small':
            col = cache_col[r['cache']] if r['cache'] != '-' else class_colour(r['size'], cmap)
            frac = r['live'] / float(r['objects']) if r['objects'] else 0.0
            paint(pfn, n, col, frac, tint(col), mark=n > 1)
            key = (r['cache'] != '-', r['cache'] if r['cache'] != '-' else r['size'])
            e = per_class.setdefault(key, [r['size'], r['cache'] if r['cache'] != '-' else fmt_size(r['size']),
                                            col, 0, 0, 0])
            e[3] += n * page
            e[4] += r['live'] * r['size']
            e[5] += 1

    managed = sum(m for _, m in arenas)
    meta_bytes = sum(b for _, b in d['meta'])
    meta_total = meta_bytes + totals['metapages'] * page
    pct = lambda pages: 100.0 * pages / managed if managed else 0.0
    head = title or 'spanalloc heap map'
    sub = ('%.1f MiB managed in %d arena%s   free %.1f%%   small %.1f%%   large %.1f%%   runs %.1f%%   '
           'metadata %.2f MiB (%.1f%%: region %.2f MiB + %d pool pages)' % (
               mib(managed * page), len(arenas), '' if len(arenas) == 1 else 's', pct(totals['free']),
               pct(totals['small']), pct(totals['large']), pct(totals['run']), mib(meta_total),
               100.0 * meta_total / (managed * page + meta_bytes) if managed else 0.0,
               mib(meta_bytes), totals['metapages']))

    # Rows holding no page the heap knows (not managed, no metadata) are
    # collapsed: each such stretch becomes one hatched band.
    GAP_H = CH
    views = []  # per arena: (image, [(y0, y1, kind, row0, row1)])
    for ai, (base, img) in enumerate(imgs):
        parts, segs, y, r = [], [], 0, 0
        while r < rows:
            keep = seen[ai][r]
            r1 = r
            while r1 < rows and seen[ai][r1] == keep:
                r1 += 1
            if keep:
                parts.append(img[r * CH:r1 * CH])
                segs.append((y, y + (r1 - r) * CH, 'rows', r, r1))
                y += (r1 - r) * CH
            else:
                band = np.empty((GAP_H, cols * CW, 3))
                band[:, :] = C_UNMANAGED
                yy, xx = np.mgrid[0:GAP_H, 0:cols * CW]
                band[((xx + yy) // 3) % 2 == 0] = (0.70, 0.70, 0.70)
                parts.append(band)
                segs.append((y, y + GAP_H, 'gap', r, r1))
                y += GAP_H
            r = r1
        views.append((np.concatenate(parts), segs))

    # Layout: arenas stacked on the left, per-class bars on the right.
    nclasses = max(len(per_class), 1)
    heights = [v[0].shape[0] / 100.0 + 0.55 for v in views]
    img_w = cols * CW / 100.0
    fig_h = max(sum(heights) + 2.2, 0.2 * nclasses + 2.2)
    fig_w = img_w + 5.6
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=100)
    gs = fig.add_gridspec(len(arenas), 2, width_ratios=[img_w, 3.0], height_ratios=heights,
                          left=0.85 / fig_w, right=1 - 0.25 / fig_w, top=1 - 0.95 / fig_h,
                          bottom=1.2 / fig_h, wspace=0.5 * 6 / fig_w, hspace=0.55 / (sum(heights) / len(heights)))
    fig.suptitle(head, x=0.85 / fig_w, y=1 - 0.12 / fig_h, ha='left', va='top', fontsize=15,
                 fontweight='bold')
    fig.text(0.85 / fig_w, 1 - 0.5 / fig_h, sub, ha='left', va='top', fontsize=9.5)

    row_bytes = cols * page
    tick_rows = max(1, (8 << 20) // row_bytes)  # a label every 8 MiB
    for i, (base, _img) in enumerate(imgs):
        view, segs = views[i]
        ax = fig.add_subplot(gs[i, 0])
        ax.imshow(view, interpolation='nearest', aspect='equal')
        ax.set_title('arena %d: %#x - %#x   %.1f MiB managed   (a row is %s)' % (
            i, base, base + arena_bytes, mib(arenas[i][1] * page), fmt_size(row_bytes)),
            loc='left', fontsize=9.5)
        yt, yl = [], []
        for y0, y1, kind, r0, r1 in segs:
            if kind == 'gap':
                ax.text(cols * CW / 2.0, (y0 + y1) / 2.0 - 0.5, '%s not managed' % fmt_size((r1 - r0) * row_bytes),
                        ha='center', va='center', fontsize=7, color='0.25',
                        bbox=dict(boxstyle='square,pad=0.1', fc=C_UNMANAGED, ec='none'))
                continue
            for r in range(r0, r1):
                if r == r0 or r % tick_rows == 0:
                    if yt and (y0 + (r - r0) * CH) - yt[-1] < 2 * CH:
                        continue
                    a = base + r * row_bytes
                    yt.append(y0 + (r - r0) * CH - 0.5)
                    yl.append('%d MiB' % (a >> 20) if a % (1 << 20) == 0 else '%#x' % a)
        ax.set_yticks(yt)
        ax.set_yticklabels(yl, fontsize=8)
        xt = list(range(0, cols + 1, max(1, cols // 4)))
        ax.set_xticks([x * CW - 0.5 for x in xt])
        ax.set_xticklabels(['+%s' % fmt_size(x * page) if x else '+0' for x in xt], fontsize=8)
        for sp in ax.spines.values():
            sp.set_linewidth(0.5)

    # Per class / cache: span memory held and the live part of it.
    ax = fig.add_subplot(gs[:, 1])
    items = sorted(per_class.items(), key=lambda kv: (kv[0][0], kv[1][0]))
    y = list(range(len(items)))
    held = [mib(e[3]) for _, e in items]
    liveb = [mib(e[4]) for _, e in items]
    cols_ = [e[2] for _, e in items]
    ax.barh(y, held, color=[tint(c) for c in cols_], edgecolor=cols_, linewidth=0.6, height=0.8)
    ax.barh(y, liveb, color=cols_, height=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(['%s  (%d span%s)' % (e[1], e[5], '' if e[5] == 1 else 's') for _, e in items],
                       fontsize=7.5)
    ax.invert_yaxis()
    top = max(held) if held else 1.0
    for yi, (h, l) in enumerate(zip(held, liveb)):
        ax.text(h + top * 0.02, yi, '%d%%' % round(100.0 * l / h) if h else '', va='center', fontsize=7)
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel('MiB in spans (solid: live objects)', fontsize=8.5)
    ax.set_title('small objects by size class and cache', loc='left', fontsize=9.5)
    ax.tick_params(axis='x', labelsize=8)
    for s in ('top', 'right'):
        ax.spines[s].set_visible(False)

    legend = [Patch(facecolor=C_FREE, edgecolor='0.5', label='free'),
              Patch(facecolor=C_UNMANAGED, label='not managed'),
              Patch(facecolor=C_META, label='metadata region'),
              Patch(facecolor=C_METAPAGES, label='metadata pages'),
              Patch(facecolor=C_LARGE[0], label='large object'),
              Patch(facecolor=C_RUN[0], label='page run')]
    legend += [Patch(facecolor=cache_col[c], label='cache "%s"' % c) for c in caches]
    for sz in (16, 256, 4096, 32768):
        legend.append(Patch(facecolor=class_colour(sz, cmap), label='kmalloc %s' % fmt_size(sz)))
    legend.append(Patch(facecolor=tint(class_colour(256, cmap)), edgecolor=class_colour(256, cmap),
                        label='free slots (pale)'))
    fig.legend(handles=legend, loc='lower left', ncol=min(len(legend), 8), fontsize=8, frameon=False,
               bbox_to_anchor=(0.75 / fig_w, 0.25 / fig_h), handlelength=1.4, columnspacing=1.2)
    fig.text(0.85 / fig_w, 0.12 / fig_h,
             'Each cell is a %s page; a dark left edge marks where a span of more than one page starts.  In a small-object span '
             'the solid part of each cell is the share of its objects that are live, the pale part its free '
             'slots.' % fmt_size(page), fontsize=8, color='0.3', va='bottom')
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description='Draw a spanalloc heap map (kmem_heapmap dump) as a PNG.')
    ap.add_argument('dump', nargs='?', default='-', help='the dump or a serial log (default: stdin)')
    ap.add_argument('-o', '--output', default='heapmap.png', help='PNG to write (default heapmap.png)')
    ap.add_argument('--cols', type=int, default=256, help='pages per row (a power of two; default 256)')
    ap.add_argument('--title', help='title of the picture')
    a = ap.parse_args(argv)
    if a.cols <= 0 or ARENA_PAGES % a.cols:
        ap.error('--cols must divide %d' % ARENA_PAGES)
    try:
        if a.dump == '-':
            d = parse(sys.stdin)
        else:
            with open(a.dump, errors='replace') as f:
                d = parse(f)
        render(d, a.output, a.cols, a.title)
    except (DumpError, OSError) as e:
        print('heapmap.py: %s' % e, file=sys.stderr)
        return 1
    print('heapmap.py: wrote %s' % a.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
