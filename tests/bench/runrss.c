/*
 * tests/bench/runrss.c - runs a program and reports its wall time and peak
 * RSS, for workload (f).
 *
 *     runrss OUTFILE PRELOAD|- PROGRAM ARGS...
 *
 * Writes "wall_s=<s> maxrss_kib=<KiB> status=<exit status>" to OUTFILE and
 * exits with the program's status.  PRELOAD ("-" for none) goes into the
 * child's LD_PRELOAD only, so this launcher itself runs on glibc's malloc
 * and stays small.
 *
 * Why not measure from Python: Linux carries the parent's RSS high-water
 * mark across fork+exec into the child's ru_maxrss, so a child of a 30 MiB
 * Python process never reports less than 30 MiB.  This launcher is about
 * 1 MiB, for every allocator alike.  ru_maxrss from wait4 is the largest of
 * the child and all its waited-for descendants.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: runrss OUTFILE PRELOAD|- PROGRAM ARGS...\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("runrss: fork");
		return 2;
	}
	if (pid == 0) {
		if (strcmp(argv[2], "-") != 0)
			setenv("LD_PRELOAD", argv[2], 1);
		else
			unsetenv("LD_PRELOAD");
		execvp(argv[3], argv + 3);
		perror("runrss: exec");
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("runrss: wait4");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror("runrss: output file");
		return 2;
	}
	fprintf(out, "wall_s=%.6f maxrss_kib=%ld status=%d\n", wall, ru.ru_maxrss, code);
	fclose(out);
	return code;
}
