/*
 * boot/acpi.c - the two ACPI tables the kernel needs, read in place
 * (firmware ACPI memory is never given to the heap):
 *   MADT ("APIC")  enabled local APICs -> CPU list (BSP first), LAPIC base
 *   FADT ("FACP")  the PM timer's I/O port, to calibrate the LAPIC timer
 *   SRAT           NUMA: each CPU's and each memory range's proximity
 *                  domain (renumbered as nodes 0.., in order of appearance)
 *   SLIT           NUMA: the distances between them
 * Each is looked up by name in the root table, SRAT and SLIT only once
 * the MADT has named the CPUs (firmware lists tables in any order).
 * UEFI hands over the RSDP (a configuration table); a PC BIOS (the
 * Multiboot path, SeaBIOS) leaves it on a 16-byte boundary in the first
 * KiB of the EBDA or in 0xe0000-0xfffff (ACPI 6.5, 5.2.5.1), where
 * acpi_find_rsdp_bios looks.  Runs before the heap exists; reads memory
 * only.
 */
#include "kernel.h"

struct sdt_header {
	char sig[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision, creator_id, creator_revision;
} __attribute__((packed));

static uint8_t rd8(const uint8_t *p) { return *p; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static bool sum_ok(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s == 0;
}

static void parse_madt(const uint8_t *t, uint32_t len, struct acpi_info *out)
{
	out->lapic_phys = rd32(t + 36);
	for (uint32_t off = 44; off + 2 <= len;) {
		uint8_t type = rd8(t + off), elen = rd8(t + off + 1);
		if (elen < 2 || off + elen > len)
			break;
		const uint8_t *e = t + off;
		uint32_t id = ~0u, flags = 0;
		if (type == 0 && elen >= 8) { /* processor local APIC */
			id = rd8(e + 3);
			flags = rd32(e + 4);
		} else if (type == 9 && elen >= 16) { /* processor local x2APIC */
			id = rd32(e + 4);
			flags = rd32(e + 8);
		} else if (type == 5 && elen >= 12) { /* LAPIC address override */
			out->lapic_phys = rd64(e + 4);
		}
		if (id != ~0u && (flags & 1)) {
			bool dup = false;
			for (unsigned i = 0; i < out->ncpus; i++)
				dup |= out->apic_ids[i] == id;
			if (!dup) {
				out->ncpus_seen++;
				if (out->ncpus < BOOT_MAX_CPUS)
					out->apic_ids[out->ncpus++] = id;
			}
		}
		off += elen;
	}
}

static void parse_fadt(const uint8_t *t, uint32_t len, struct acpi_info *out)
{
	if (len >= 116) {
		out->pm_timer_port = (uint16_t)rd32(t + 76);
		out->pm_timer_32bit = (rd32(t + 112) >> 8) & 1;
	}
	if (!out->pm_timer_port && len >= 220 && rd8(t + 208) == 1 /* system I/O */)
		out->pm_timer_port = (uint16_t)rd64(t + 212);
}

/* SRAT: the library's reader (spanalloc/memmap.h) gives the memory
 * ranges and the (x2)APIC ids with their nodes; the MADT's CPUs get
 * theirs from it. */
static void parse_srat(const uint8_t *t, uint32_t len, struct acpi_info *out)
{
	static struct kmem_numa_cpu cpus[4 * BOOT_MAX_CPUS];
	if (kmem_acpi_srat(t, len, out->mem, ACPI_MAX_MEM_AFFINITY, cpus, ARRAY_SIZE(cpus),
	                   &out->numa) < 0)
		return;
	for (unsigned i = 0; i < out->ncpus; i++)
		for (unsigned k = 0; k < out->numa.ncpus; k++)
			if (cpus[k].apic_id == out->apic_ids[i])
				out->cpu_node[i] = (uint8_t)cpus[k].node;
}

/* A SLIT the library rejects leaves no distances rather than wrong ones. */
static void parse_slit(const uint8_t *t, uint32_t len, struct acpi_info *out)
{
	if (out->numa.nnodes > 1 && kmem_acpi_slit(t, len, &out->numa, out->distance) < 0)
		memset(out->distance, 0, sizeof(out->distance));
}

/* The table at phys if its length and checksum are sound, else NULL. */
static const uint8_t *table_at(uint64_t phys, uint32_t *len)
{
	const uint8_t *t = (const uint8_t *)(uintptr_t)phys;
	if (!t)
		return NULL;
	*len = rd32(t + 4);
	return *len >= sizeof(struct sdt_header) && sum_ok(t, *len) ? t : NULL;
}

/* Calls fn on every sound table named sig in the root table (entries of
 * esize bytes: 8 in an XSDT, 4 in an RSDT). */
static void each_table(const uint8_t *root, unsigned esize, const char *sig,
                       void (*fn)(const uint8_t *, uint32_t, struct acpi_info *),
                       struct acpi_info *out)
{
	uint32_t rlen = rd32(root + 4), len;
	for (uint32_t off = sizeof(struct sdt_header); off + esize <= rlen; off += esize) {
		const uint8_t *t = table_at(esize == 8 ? rd64(root + off) : rd32(root + off), &len);
		if (t && !memcmp(t, sig, 4))
			fn(t, len, out);
	}
}

static uint64_t rsdp_scan(uint64_t base, uint64_t len)
{
	for (uint64_t a = base; a + 20 <= base + len; a += 16) {
		const uint8_t *p = (const uint8_t *)(uintptr_t)a;
		if (!memcmp(p, "RSD PTR ", 8) && sum_ok(p, 20))
			return a;
	}
	return 0;
}

uint64_t acpi_find_rsdp_bios(void)
{
	/* The BIOS data area's word at 0x40e: the EBDA's real-mode segment.
	 * (The empty asm hides the constant address from GCC, which takes
	 * any pointer below 4 KiB for a null pointer's member.) */
	uintptr_t bda = 0x40e;
	__asm__("" : "+r"(bda));
	uint64_t ebda = (uint64_t)*(const uint16_t *)bda << 4;
	uint64_t a = ebda >= 0x80000 && ebda < 0xa0000 ? rsdp_scan(ebda, 1024) : 0;
	return a ? a : rsdp_scan(0xe0000, 0x20000);
}

int acpi_parse(uint64_t rsdp_phys, struct acpi_info *out)
{
	memset(out, 0, sizeof(*out));
	const uint8_t *rsdp = (const uint8_t *)(uintptr_t)rsdp_phys;
	if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) || !sum_ok(rsdp, 20))
		return -1;
	memcpy(out->oem_id, rsdp + 9, 6);
	out->oem_id[6] = 0;
	uint8_t rev = rsdp[15];
	uint64_t xsdt = rev >= 2 && sum_ok(rsdp, rd32(rsdp + 20)) ? rd64(rsdp + 24) : 0;
	uint64_t root = xsdt ? xsdt : rd32(rsdp + 16);
	unsigned esize = xsdt ? 8 : 4;
	uint32_t len;
	const uint8_t *r = table_at(root, &len);
	if (!r)
		return -1;
	each_table(r, esize, "APIC", parse_madt, out);
	each_table(r, esize, "FACP", parse_fadt, out);
	/* NUMA, now that the CPUs are known: SRAT first (it numbers the
	 * nodes), then SLIT. */
	each_table(r, esize, "SRAT", parse_srat, out);
	each_table(r, esize, "SLIT", parse_slit, out);
	return out->ncpus ? 0 : -1;
}
