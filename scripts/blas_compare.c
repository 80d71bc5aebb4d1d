// blas_compare: the measurement behind the CPU backend's choice of GEMM library
// (engine/cpu/blas.go). It times sgemm of the model's shapes the way the backend runs them —
// rows of C split across T threads, each calling the library single-threaded — against the
// FMA peak of the same T threads measured in the same run (the backend's own FMA loop). Both
// are timed in the CPU time of the threads (the slowest thread of a round), the best of ten
// rounds, so that other processes on a busy machine change the figures little.
//
//   gcc -O2 -Wno-unused-function -o /tmp/blas_compare scripts/blas_compare.c -ldl -lpthread
//   OPENBLAS_CORETYPE=SkylakeX /tmp/blas_compare libopenblas.so.0 2
//   OMP_NUM_THREADS=1 /tmp/blas_compare libblis.so.4 2
//   OMP_NUM_THREADS=1 /tmp/blas_compare libdnnl.so.2 2
//
// LIB is opened with dlopen: a CBLAS library (cblas_sgemm) or oneDNN (dnnl_sgemm).
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/cpu/peak.h"

typedef void (*cblas_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
typedef int (*dnnl_fn)(char, char, long, long, long, float, const float *, long, const float *, long, float, float *, long);
static cblas_fn cblas;
static dnnl_fn dnnl;

// sgemm: row-major C = op(A)·op(B).
static void sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc) {
	if (dnnl) {
		dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1, a, lda, b, ldb, 0, c, ldc);
	} else {
		cblas(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, 1, a, lda, b, ldb, 0, c, ldc);
	}
}

// cpu_now is the CPU time of the calling thread in seconds.
static double cpu_now(void) {
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

// peak is the best of 10 runs of the backend's FMA loop (engine/cpu/peak.h) on T threads at
// once, in FLOP/s of the slowest thread's CPU time.
static long peak_iters = 2000000;
static int features;

typedef struct {
	double flops, cpu;
} fma_run;

static void *fma_thread(void *arg) {
	fma_run *r = arg;
	double t0 = cpu_now();
	r->flops = cir_fma_loop(features, peak_iters);
	r->cpu = cpu_now() - t0;
	return NULL;
}

static double peak(int T) {
	double best = 0;
	for (int r = 0; r < 10; r++) {
		pthread_t t[64];
		fma_run runs[64];
		double flops = 0, slowest = 0;
		for (int i = 0; i < T; i++) pthread_create(&t[i], NULL, fma_thread, &runs[i]);
		for (int i = 0; i < T; i++) {
			pthread_join(t[i], NULL);
			flops += runs[i].flops;
			if (runs[i].cpu > slowest) slowest = runs[i].cpu;
		}
		if (flops / slowest > best) best = flops / slowest;
	}
	return best;
}

typedef struct {
	int ta, tb, m, n, k, lda, ldb, ldc, lo, hi, reps;
	const float *a, *b;
	float *c;
	double cpu; // the thread's CPU time for the reps
} job;

static void *run(void *arg) {
	job *j = arg;
	double t0 = cpu_now();
	for (int r = 0; r < j->reps; r++) {
		const float *a = j->ta ? j->a + j->lo : j->a + (long)j->lo * j->lda;
		sgemm(j->ta, j->tb, j->hi - j->lo, j->n, j->k, a, j->lda, j->b, j->ldb, j->c + (long)j->lo * j->ldc, j->ldc);
	}
	j->cpu = cpu_now() - t0;
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s LIB THREADS\n", argv[0]);
		return 2;
	}
	int T = atoi(argv[2]);
	features = cir_cpu_features();
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	dnnl = (dnnl_fn)dlsym(lib, "dnnl_sgemm");
	cblas = (cblas_fn)dlsym(lib, "cblas_sgemm");
	if (!dnnl && !cblas) {
		fprintf(stderr, "%s has neither cblas_sgemm nor dnnl_sgemm\n", argv[1]);
		return 1;
	}
	void (*set_threads)(int) = (void (*)(int))dlsym(lib, "openblas_set_num_threads");
	if (set_threads) set_threads(1);
	char *(*corename)(void) = (char *(*)(void))dlsym(lib, "openblas_get_corename");
	double pk = peak(T);
	printf("%s%s%s, %d threads, FMA peak %.1f GFLOP/s\n", argv[1], corename ? " " : "", corename ? corename() : "", T, pk / 1e9);
	static const struct {
		const char *name;
		int ta, tb, m, n, k;
	} shapes[] = {
	    {"20M qkv   fwd NT", 0, 1, 512, 768, 512},   {"20M o     fwd NT", 0, 1, 512, 512, 512},
	    {"20M gu    fwd NT", 0, 1, 512, 2816, 512},  {"20M down  fwd NT", 0, 1, 512, 512, 1408},
	    {"20M head  fwd NT", 0, 1, 512, 8192, 512},  {"20M gu    dx  NN", 0, 0, 512, 512, 2816},
	    {"20M down  dx  NN", 0, 0, 512, 1408, 512},  {"20M gu    dw  TN", 1, 0, 2816, 512, 512},
	    {"20M down  dw  TN", 1, 0, 512, 1408, 512},  {"20M head  dw  TN", 1, 0, 8192, 512, 512},
	    {"toy qkv   fwd NT", 0, 1, 2048, 256, 128},  {"toy gu    fwd NT", 0, 1, 2048, 768, 128},
	    {"toy down  fwd NT", 0, 1, 2048, 128, 384},  {"toy gu    dw  TN", 1, 0, 768, 128, 2048},
	    {"toy gu    dx  NN", 0, 0, 2048, 128, 768},
	};
	double total_flops = 0, total_time = 0, lowest = 1e30;
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		int ta = shapes[s].ta, tb = shapes[s].tb, m = shapes[s].m, n = shapes[s].n, k = shapes[s].k;
		int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
		float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
		for (long i = 0; i < (long)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
		for (long i = 0; i < (long)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
		double flops = 2.0 * m * n * k, best = 1e30;
		int reps = (int)(0.05 * pk / flops) + 1; // about 50 ms a round at the peak
		for (int r = 0; r < 10; r++) {
			pthread_t t[64];
			job j[64];
			int blocks = (m + 15) / 16;
			for (int w = 0; w < T; w++) {
				int lo = (int)((long)blocks * w / T * 16), hi = (int)((long)blocks * (w + 1) / T * 16);
				j[w] = (job){ta, tb, m, n, k, lda, ldb, ldc, lo, hi < m ? hi : m, reps, a, b, c, 0};
				if (w > 0) pthread_create(&t[w], NULL, run, &j[w]);
			}
			run(&j[0]);
			double slowest = j[0].cpu;
			for (int w = 1; w < T; w++) {
				pthread_join(t[w], NULL);
				if (j[w].cpu > slowest) slowest = j[w].cpu;
			}
			double dt = slowest / reps;
			if (dt < best) best = dt;
		}
		double gf = flops / best;
		total_flops += flops;
		total_time += best;
		if (gf < lowest) lowest = gf;
		printf("  %s %5d×%5d×%5d %7.1f GFLOP/s %4.0f%%\n", shapes[s].name, m, n, k, gf / 1e9, 100 * gf / pk);
		free(a);
		free(b);
		free(c);
	}
	printf("  all shapes %.1f GFLOP/s %.0f%% of peak, lowest %.0f%%\n", total_flops / total_time / 1e9,
	       100 * total_flops / total_time / pk, 100 * lowest / pk);
	return 0;
}
