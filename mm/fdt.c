/*
 * mm/fdt.c - the device-tree reader of include/spanalloc/fdt.h.
 *
 * The blob is big-endian and may sit at any alignment (a test's buffer,
 * a bootloader's copy), so every field is read byte by byte.  Every read
 * is checked against the block it belongs to: the struct block for tokens,
 * names and property values, the strings block for property names, the
 * whole blob for the memory reservation block.  Nothing here allocates or
 * calls a library function.
 */
#include "spanalloc/fdt.h"
#include "spanalloc/memmap.h"

#define FDT_BEGIN_NODE 1u
#define FDT_END_NODE 2u
#define FDT_PROP 3u
#define FDT_NOP 4u
#define FDT_END 9u

#define DEFAULT_ADDR_CELLS 2u /* devicetree specification 2.3.5 */
#define DEFAULT_SIZE_CELLS 1u

/* The blob, after its header was checked. */
struct fdt {
	const uint8_t *b;
	uint32_t size;             /* totalsize */
	uint32_t st_off, st_end;   /* struct block [st_off, st_end) */
	uint32_t str_off, str_end; /* strings block [str_off, str_end) */
	uint32_t rsv_off;          /* memory reservation block */
};

static uint32_t fdt_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t fdt_rd64(const uint8_t *p)
{
	return (uint64_t)fdt_rd32(p) << 32 | fdt_rd32(p + 4);
}

static uint32_t fdt_align4(uint32_t x)
{
	return (x + 3u) & ~3u;
}

uint32_t fdt_check(const void *dtb, size_t max_size)
{
	const uint8_t *h = dtb;
	if (!h || fdt_rd32(h) != FDT_MAGIC)
		return 0;
	uint32_t size = fdt_rd32(h + 4), st = fdt_rd32(h + 8), str = fdt_rd32(h + 12), rsv = fdt_rd32(h + 16);
	uint32_t version = fdt_rd32(h + 20), last_comp = fdt_rd32(h + 24);
	uint32_t str_size = fdt_rd32(h + 32), st_size = fdt_rd32(h + 36);
	if (version < 16 || last_comp > 17 || size < FDT_HEADER_SIZE)
		return 0;
	if (max_size && size > max_size)
		return 0;
	if (version < 17) /* no size_dt_struct before v17: up to the end */
		st_size = st <= size ? size - st : 0;
	if (st < FDT_HEADER_SIZE || (st & 3) || st > size || st_size > size - st || st_size < 4)
		return 0;
	if (str < FDT_HEADER_SIZE || str > size || str_size > size - str)
		return 0;
	if (rsv < FDT_HEADER_SIZE || (rsv & 7) || rsv > size - 16)
		return 0;
	return size;
}

static bool fdt_open(const void *dtb, struct fdt *f)
{
	uint32_t size = fdt_check(dtb, 0);
	if (!size)
		return false;
	const uint8_t *h = dtb;
	f->b = h;
	f->size = size;
	f->st_off = fdt_rd32(h + 8);
	f->st_end = fdt_rd32(h + 20) >= 17 ? f->st_off + fdt_rd32(h + 36) : size;
	f->str_off = fdt_rd32(h + 12);
	f->str_end = f->str_off + fdt_rd32(h + 32);
	f->rsv_off = fdt_rd32(h + 16);
	return true;
}

/* The token at struct offset *off (advanced past it); false past the end. */
static bool fdt_token(const struct fdt *f, uint32_t *off, uint32_t *tok)
{
	if (*off > f->st_end - 4)
		return false;
	*tok = fdt_rd32(f->b + *off);
	*off += 4;
	return true;
}

/* Length of the NUL-terminated string at off, which must end before end;
 * false if it does not. */
static bool fdt_str_at(const struct fdt *f, uint32_t off, uint32_t end, uint32_t *len)
{
	for (uint32_t i = off; i < end; i++)
		if (f->b[i] == 0) {
			*len = i - off;
			return true;
		}
	return false;
}

/* Skips a node name at *off (just after FDT_BEGIN_NODE). */
static bool fdt_skip_name(const struct fdt *f, uint32_t *off, const char **name)
{
	uint32_t len;
	if (!fdt_str_at(f, *off, f->st_end, &len))
		return false;
	*name = (const char *)f->b + *off;
	uint32_t next = fdt_align4(*off + len + 1);
	if (next > f->st_end)
		return false;
	*off = next;
	return true;
}

/* A property at *off (just after FDT_PROP): its value, length and name
 * offset in the strings block; *off moves past it. */
static bool fdt_read_prop(const struct fdt *f, uint32_t *off, const uint8_t **val, uint32_t *len,
                      uint32_t *nameoff)
{
	if (*off > f->st_end - 8)
		return false;
	*len = fdt_rd32(f->b + *off);
	*nameoff = fdt_rd32(f->b + *off + 4);
	uint32_t v = *off + 8;
	if (*len > f->st_end - v)
		return false;
	*val = f->b + v;
	uint32_t next = v + *len;
	next = fdt_align4(next);
	if (next > f->st_end)
		return false;
	*off = next;
	return true;
}

static bool fdt_streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* Is the property name at nameoff equal to `name`?  (Bounded by the
 * strings block: an unterminated name never matches.) */
static bool fdt_prop_name_is(const struct fdt *f, uint32_t nameoff, const char *name)
{
	if (nameoff >= f->str_end - f->str_off)
		return false;
	uint32_t off = f->str_off + nameoff;
	for (uint32_t i = 0;; i++) {
		if (off + i >= f->str_end)
			return false;
		char c = (char)f->b[off + i];
		if (c != name[i])
			return false;
		if (!c)
			return true;
	}
}

/* Looks for property `name` among the properties that start at off (just
 * after a node's name). */
static const uint8_t *fdt_find_prop(const struct fdt *f, uint32_t off, const char *name, uint32_t *len)
{
	for (;;) {
		uint32_t tok;
		if (!fdt_token(f, &off, &tok))
			return NULL;
		if (tok == FDT_NOP)
			continue;
		if (tok != FDT_PROP)
			return NULL; /* first child or end of the node: not there */
		const uint8_t *val;
		uint32_t vlen, nameoff;
		if (!fdt_read_prop(f, &off, &val, &vlen, &nameoff))
			return NULL;
		if (fdt_prop_name_is(f, nameoff, name)) {
			*len = vlen;
			return val;
		}
	}
}

/* A one-cell property among those at off, or `dflt`. */
static uint32_t fdt_cells_prop(const struct fdt *f, uint32_t off, const char *name, uint32_t dflt)
{
	uint32_t len;
	const uint8_t *v = fdt_find_prop(f, off, name, &len);
	return v && len == 4 ? fdt_rd32(v) : dflt;
}

long fdt_walk(const void *dtb, bool (*fn)(const void *dtb, const struct fdt_node *node, void *arg),
              void *arg)
{
	struct fdt f;
	if (!fdt_open(dtb, &f))
		return -KMEM_EINVAL;
	struct fdt_node stack[FDT_MAX_DEPTH];
	unsigned depth = 0;
	bool root_done = false;
	long visited = 0;
	uint32_t off = f.st_off;
	for (;;) {
		uint32_t at = off, tok;
		if (!fdt_token(&f, &off, &tok))
			return -KMEM_EINVAL;
		switch (tok) {
		case FDT_BEGIN_NODE: {
			if (depth == FDT_MAX_DEPTH || (depth == 0 && root_done))
				return -KMEM_EINVAL;
			struct fdt_node *n = &stack[depth];
			n->offset = at - f.st_off;
			n->depth = depth;
			if (!fdt_skip_name(&f, &off, &n->name))
				return -KMEM_EINVAL;
			n->parent = depth ? stack[depth - 1].name : NULL;
			n->addr_cells = depth ? stack[depth - 1].child_addr_cells : DEFAULT_ADDR_CELLS;
			n->size_cells = depth ? stack[depth - 1].child_size_cells : DEFAULT_SIZE_CELLS;
			n->child_addr_cells = fdt_cells_prop(&f, off, "#address-cells", DEFAULT_ADDR_CELLS);
			n->child_size_cells = fdt_cells_prop(&f, off, "#size-cells", DEFAULT_SIZE_CELLS);
			depth++;
			visited++;
			if (fn && !fn(dtb, n, arg))
				return visited;
			break;
		}
		case FDT_END_NODE:
			if (depth == 0)
				return -KMEM_EINVAL;
			if (--depth == 0)
				root_done = true;
			break;
		case FDT_PROP: {
			const uint8_t *val;
			uint32_t len, nameoff;
			if (depth == 0 || !fdt_read_prop(&f, &off, &val, &len, &nameoff))
				return -KMEM_EINVAL;
			break;
		}
		case FDT_NOP:
			break;
		case FDT_END:
			return depth == 0 && root_done ? visited : -KMEM_EINVAL;
		default:
			return -KMEM_EINVAL;
		}
	}
}

/* Re-finds the start of a node's properties from its offset. */
static bool fdt_node_props(const void *dtb, const struct fdt_node *node, struct fdt *f, uint32_t *off)
{
	if (!fdt_open(dtb, f) || node->offset > f->st_end - f->st_off)
		return false;
	uint32_t tok;
	*off = f->st_off + node->offset;
	const char *name;
	return fdt_token(f, off, &tok) && tok == FDT_BEGIN_NODE && fdt_skip_name(f, off, &name);
}

const void *fdt_prop(const void *dtb, const struct fdt_node *node, const char *name, uint32_t *len)
{
	struct fdt f;
	uint32_t off, l;
	if (!fdt_node_props(dtb, node, &f, &off))
		return NULL;
	const uint8_t *v = fdt_find_prop(&f, off, name, &l);
	if (v && len)
		*len = l;
	return v;
}

bool fdt_prop_u32(const void *dtb, const struct fdt_node *node, const char *name, uint32_t *out)
{
	uint32_t len;
	const uint8_t *v = fdt_prop(dtb, node, name, &len);
	if (!v || len != 4)
		return false;
	*out = fdt_rd32(v);
	return true;
}

bool fdt_prop_u64(const void *dtb, const struct fdt_node *node, const char *name, uint64_t *out)
{
	uint32_t len;
	const uint8_t *v = fdt_prop(dtb, node, name, &len);
	if (!v || (len != 4 && len != 8))
		return false;
	*out = len == 8 ? fdt_rd64(v) : fdt_rd32(v);
	return true;
}

bool fdt_prop_has_string(const void *dtb, const struct fdt_node *node, const char *name, const char *s)
{
	uint32_t len;
	const char *v = fdt_prop(dtb, node, name, &len);
	if (!v)
		return false;
	/* A list of NUL-terminated strings; an unterminated tail is ignored. */
	for (uint32_t i = 0; i < len;) {
		uint32_t j = i;
		while (j < len && v[j])
			j++;
		if (j == len)
			return false;
		if (fdt_streq(v + i, s))
			return true;
		i = j + 1;
	}
	return false;
}

bool fdt_node_enabled(const void *dtb, const struct fdt_node *node)
{
	uint32_t len;
	const char *v = fdt_prop(dtb, node, "status", &len);
	if (!v)
		return true;
	return (len == 5 && fdt_streq(v, "okay")) || (len == 3 && fdt_streq(v, "ok"));
}

static uint64_t fdt_read_cells(const uint8_t *p, uint32_t n)
{
	return n == 2 ? fdt_rd64(p) : n == 1 ? fdt_rd32(p) : 0;
}

bool fdt_reg(const void *dtb, const struct fdt_node *node, unsigned i, uint64_t *base, uint64_t *size)
{
	uint32_t ac = node->addr_cells, sc = node->size_cells, len;
	if (ac < 1 || ac > 2 || sc > 2)
		return false;
	const uint8_t *v = fdt_prop(dtb, node, "reg", &len);
	uint32_t entry = 4 * (ac + sc);
	if (!v || i >= len / entry)
		return false;
	const uint8_t *e = v + (size_t)i * entry;
	*base = fdt_read_cells(e, ac);
	*size = fdt_read_cells(e + 4 * ac, sc);
	return true;
}

struct find_ctx {
	const char *compat;
	struct fdt_node *out;
	bool found;
};

static bool fdt_find_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	struct find_ctx *c = arg;
	if (fdt_prop_has_string(dtb, n, "compatible", c->compat) && fdt_node_enabled(dtb, n)) {
		*c->out = *n;
		c->found = true;
		return false;
	}
	return true;
}

bool fdt_find_compatible(const void *dtb, const char *compat, struct fdt_node *out)
{
	struct find_ctx c = {compat, out, false};
	return fdt_walk(dtb, fdt_find_fn, &c) >= 0 && c.found;
}

/* --- the memory map -------------------------------------------------------- */

struct fdt_map_ctx {
	struct kmem_region *out;
	size_t cap, n;
	bool full;
	struct fdt_memmap_info *info;
	bool usable_pass; /* first pass: /memory; second: /reserved-memory */
};

static void fdt_map_add(struct fdt_map_ctx *c, uint64_t base, uint64_t size, uint32_t type)
{
	if (kmem_memmap_add(c->out, c->cap, &c->n, base, size, type))
		c->full = true;
}

static bool fdt_prefix_is(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return false;
	return true;
}

static bool fdt_is_memory_node(const void *dtb, const struct fdt_node *n)
{
	if (n->depth != 1)
		return false;
	if (fdt_streq(n->name, "memory") || fdt_prefix_is(n->name, "memory@"))
		return true;
	return fdt_prop_has_string(dtb, n, "device_type", "memory");
}

/* A usable range of a /memory node with numa-node-id `node`: node 0
 * merges as any range (kmem_memmap_add merges only into a region of node
 * 0); another node's range gets a region of its own, so that no range of
 * one node is merged into a region of another. */
static void fdt_map_add_node(struct fdt_map_ctx *c, uint64_t base, uint64_t size, uint32_t node)
{
	if (node == 0) {
		fdt_map_add(c, base, size, KMEM_REGION_USABLE);
	} else if (c->n < c->cap) {
		if (base != 0 && size > UINT64_MAX - base + 1)
			size = UINT64_MAX - base + 1; /* cut at 2^64, as kmem_memmap_add */
		c->out[c->n++] = (struct kmem_region){.base = base, .length = size,
		                                      .type = KMEM_REGION_USABLE, .node = node};
	} else {
		c->full = true;
	}
}

static bool fdt_map_fn(const void *dtb, const struct fdt_node *n, void *arg)
{
	struct fdt_map_ctx *c = arg;
	uint64_t base, size;
	if (c->usable_pass) {
		if (!fdt_is_memory_node(dtb, n) || !fdt_node_enabled(dtb, n))
			return true;
		c->info->memory_nodes++;
		uint32_t node = 0;
		if (fdt_prop_u32(dtb, n, "numa-node-id", &node) && node >= c->info->numa_nodes)
			c->info->numa_nodes = node + 1;
		if (node >= KMEM_MAX_NODES) {
			c->info->numa_folded++;
			node = 0;
		}
		for (unsigned i = 0; fdt_reg(dtb, n, i, &base, &size); i++)
			if (size) {
				fdt_map_add_node(c, base, size, node);
				c->info->memory_ranges++;
				c->info->usable_bytes += size;
			}
		return true;
	}
	if (n->depth != 2 || !fdt_streq(n->parent, "reserved-memory") || !fdt_node_enabled(dtb, n))
		return true;
	if (fdt_reg(dtb, n, 0, &base, &size)) {
		c->info->reserved_nodes++;
		for (unsigned i = 0; fdt_reg(dtb, n, i, &base, &size); i++)
			fdt_map_add(c, base, size, KMEM_REGION_RESERVED);
	} else if (fdt_prop(dtb, n, "size", NULL)) {
		c->info->reserved_dynamic++;
	}
	return true;
}

long fdt_memory_map(const void *dtb, uint64_t dtb_phys, const struct kmem_region *keep_out,
                    size_t nkeep, struct kmem_region *out, size_t cap, struct fdt_memmap_info *info)
{
	struct fdt_memmap_info scratch;
	struct fdt f;
	if (!info)
		info = &scratch;
	*info = (struct fdt_memmap_info){0};
	if (!fdt_open(dtb, &f))
		return -KMEM_EINVAL;
	info->totalsize = f.size;
	struct fdt_map_ctx c = {.out = out, .cap = cap, .info = info, .usable_pass = true};
	if (fdt_walk(dtb, fdt_map_fn, &c) < 0)
		return -KMEM_EINVAL;

	/* The memory reservation block: (address, size) pairs up to (0, 0). */
	for (uint32_t off = f.rsv_off;; off += 16) {
		if (off > f.size - 16)
			return -KMEM_EINVAL; /* no terminator inside the blob */
		uint64_t base = fdt_rd64(f.b + off), size = fdt_rd64(f.b + off + 8);
		if (base == 0 && size == 0)
			break;
		info->rsvmap_entries++;
		fdt_map_add(&c, base, size, KMEM_REGION_RESERVED);
	}

	c.usable_pass = false;
	if (fdt_walk(dtb, fdt_map_fn, &c) < 0)
		return -KMEM_EINVAL;
	fdt_map_add(&c, dtb_phys, f.size, KMEM_REGION_RESERVED);
	for (size_t i = 0; i < nkeep; i++)
		fdt_map_add(&c, keep_out[i].base, keep_out[i].length, KMEM_REGION_RESERVED);
	if (c.full)
		return -KMEM_ENOMEM;
	return (long)c.n;
}
