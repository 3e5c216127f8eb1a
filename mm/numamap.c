/*
 * mm/numamap.c - NUMA nodes from firmware tables (the contract is in
 * include/spanalloc/memmap.h, "NUMA nodes from firmware"; see malloc.c for
 * the heap's use of nodes).
 *
 * ACPI describes nodes in two tables (ACPI 6.5, 5.2.16 and 5.2.17):
 *   SRAT  after the 36-byte header, 4 bytes of table revision and 8
 *         reserved, then type-length entries:
 *           0  processor local APIC affinity (16 bytes): domain bits 0-7
 *              at +2, APIC id at +3, flags at +4 (bit 0 enabled), domain
 *              bits 8-31 at +9..+11;
 *           1  memory affinity (40): domain at +2, base at +8, length at
 *              +16, flags at +28 (bit 0 enabled);
 *           2  processor local x2APIC affinity (24): domain at +4, x2APIC
 *              id at +8, flags at +12;
 *         others (GICC, ITS, generic initiators) name no memory or APIC.
 *   SLIT  after the header, the number of localities N (8 bytes), then
 *         N x N one-byte distances, indexed by proximity domain.
 * Proximity domains are arbitrary 32-bit numbers; the heap's nodes are
 * 0 .. KMEM_MAX_NODES-1, so domains are numbered in order of first
 * appearance in the SRAT.  Every read is checked against the table's own
 * length and the caller's bound, as the memory-map adapters are.
 *
 * Static names carry a numa_ prefix (the amalgamation is one translation
 * unit).
 */
#include "spanalloc/memmap.h"

int memcmp(const void *a, const void *b, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

static uint32_t numa_ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static uint64_t numa_ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* The table's length if it is a sound table with this signature inside
 * the caller's len bytes (length >= min, checksum), else 0. */
static uint32_t numa_table(const uint8_t *t, size_t len, const char *sig, uint32_t min)
{
	if (!t || len < 36 || memcmp(t, sig, 4) != 0)
		return 0;
	uint32_t n = numa_ld32(t + 4);
	if (n < min || n > len)
		return 0;
	uint8_t sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + t[i]);
	return sum == 0 ? n : 0;
}

static uint32_t numa_node_of(struct kmem_numa_info *info, uint32_t domain)
{
	for (unsigned i = 0; i < info->nnodes; i++)
		if (info->domain[i] == domain)
			return i;
	if (info->nnodes == KMEM_MAX_NODES) {
		info->folded++;
		return 0;
	}
	info->domain[info->nnodes] = domain;
	return info->nnodes++;
}

long kmem_acpi_srat(const void *srat, size_t len, struct kmem_region *mem, size_t mem_cap,
                    struct kmem_numa_cpu *cpus, size_t cpu_cap, struct kmem_numa_info *info)
{
	const uint8_t *t = srat;
	*info = (struct kmem_numa_info){0};
	uint32_t n = numa_table(t, len, "SRAT", 48);
	if (!n)
		return -KMEM_EINVAL;
	for (uint32_t off = 48; off < n;) {
		if (n - off < 2)
			return -KMEM_EINVAL;
		const uint8_t *e = t + off;
		uint8_t type = e[0], elen = e[1];
		if (elen < 2 || elen > n - off)
			return -KMEM_EINVAL;
		uint32_t apic = 0, domain = 0;
		bool cpu = false;
		if (type == 0 && elen >= 16 && (numa_ld32(e + 4) & 1)) {
			apic = e[3];
			domain = e[2] | (uint32_t)e[9] << 8 | (uint32_t)e[10] << 16 | (uint32_t)e[11] << 24;
			cpu = true;
		} else if (type == 2 && elen >= 24 && (numa_ld32(e + 12) & 1)) {
			apic = numa_ld32(e + 8);
			domain = numa_ld32(e + 4);
			cpu = true;
		} else if (type == 1 && elen >= 40 && (numa_ld32(e + 28) & 1) && numa_ld64(e + 16)) {
			uint32_t node = numa_node_of(info, numa_ld32(e + 2));
			info->mem_seen++;
			if (info->nmem < mem_cap)
				mem[info->nmem++] = (struct kmem_region){
					.base = numa_ld64(e + 8), .length = numa_ld64(e + 16),
					.type = KMEM_REGION_USABLE, .node = node};
		}
		if (cpu) {
			uint32_t node = numa_node_of(info, domain);
			info->cpus_seen++;
			if (info->ncpus < cpu_cap)
				cpus[info->ncpus++] = (struct kmem_numa_cpu){.apic_id = apic, .node = node};
		}
		off += elen;
	}
	return (long)info->nmem;
}

int kmem_acpi_slit(const void *slit, size_t len, const struct kmem_numa_info *info, uint8_t *distance)
{
	const uint8_t *t = slit;
	uint32_t n = numa_table(t, len, "SLIT", 44);
	if (!n)
		return -KMEM_EINVAL;
	uint64_t loc = numa_ld64(t + 36);
	if (loc == 0 || loc > 0xffff || 44 + loc * loc > n)
		return -KMEM_EINVAL;
	unsigned nn = info->nnodes;
	for (unsigned a = 0; a < nn; a++)
		if (info->domain[a] >= loc)
			return -KMEM_EINVAL;
	for (unsigned a = 0; a < nn; a++)
		for (unsigned b = 0; b < nn; b++)
			distance[a * nn + b] = t[44 + info->domain[a] * loc + info->domain[b]];
	return 0;
}

/* The node of the first range holding address a, or 0. */
static uint32_t numa_range_node(const struct kmem_region *r, size_t nr, uint64_t a)
{
	for (size_t i = 0; i < nr; i++)
		if (a >= r[i].base && a - r[i].base < r[i].length)
			return r[i].node;
	return 0;
}

long kmem_memmap_split_nodes(struct kmem_region *map, size_t n, size_t cap,
                             const struct kmem_region *ranges, size_t nranges)
{
	if (n > cap)
		return -KMEM_EINVAL;
	size_t n0 = n;
	for (size_t i = 0; i < n0; i++) {
		if (map[i].type != KMEM_REGION_USABLE || map[i].length == 0)
			continue;
		/* The last byte, not the end: a region may end at 2^64. */
		uint64_t at = map[i].base, last = map[i].base + (map[i].length - 1);
		if (last < at)
			last = UINT64_MAX;
		for (struct kmem_region *piece = &map[i];;) {
			/* The piece runs to the nearest range boundary past at. */
			uint64_t plast = last;
			for (size_t k = 0; k < nranges; k++) {
				uint64_t b = ranges[k].base, e = ranges[k].base + ranges[k].length;
				if (b > at && b - 1 < plast)
					plast = b - 1;
				if (e > at && e - 1 < plast)
					plast = e - 1;
			}
			*piece = (struct kmem_region){.base = at, .length = plast - at + 1,
			                              .type = KMEM_REGION_USABLE,
			                              .node = numa_range_node(ranges, nranges, at)};
			if (plast == last)
				break;
			if (n == cap)
				return -KMEM_ENOMEM;
			at = plast + 1;
			piece = &map[n++];
		}
	}
	return (long)n;
}
