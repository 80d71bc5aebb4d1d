// The GEMM library of the CPU backend: OpenBLAS, opened with dlopen after choosing its kernels
// from CPUID (see blas.go for why).
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// The CBLAS and OpenBLAS entry points the backend calls (declared here, not taken from a
// header, so the build needs only the shared library at run time).
enum { CIR_ROW_MAJOR = 101, CIR_NO_TRANS = 111, CIR_TRANS = 112 };
typedef void (*cir_sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha,
                             const float *a, int lda, const float *b, int ldb, float beta,
                             float *c, int ldc);
typedef void (*cir_set_threads_fn)(int n);
typedef char *(*cir_str_fn)(void);

static cir_sgemm_fn cir_cblas_sgemm;
static cir_set_threads_fn cir_openblas_set_num_threads;
static cir_str_fn cir_openblas_get_corename, cir_openblas_get_config;

// setenv_saved sets name to value and returns the old value (malloc'd, or NULL if unset).
static char *cir_setenv_saved(const char *name, const char *value) {
	const char *old = getenv(name);
	char *saved = old ? strdup(old) : NULL;
	setenv(name, value, 1);
	return saved;
}

static void cir_restore_env(const char *name, char *saved) {
	if (saved) {
		setenv(name, saved, 1);
		free(saved);
	} else {
		unsetenv(name);
	}
}

// cir_blas_open loads OpenBLAS with OPENBLAS_CORETYPE=core (read once, by the library's
// constructor) and one thread, then puts both variables back as they were, so that child
// processes see the caller's environment. It returns NULL, or an error message (static).
static const char *cir_blas_open(const char *core) {
	static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
	char *oldCore = cir_setenv_saved("OPENBLAS_CORETYPE", core);
	char *oldThreads = cir_setenv_saved("OPENBLAS_NUM_THREADS", "1");
	void *lib = NULL;
	for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) {
		lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	}
	cir_restore_env("OPENBLAS_CORETYPE", oldCore);
	cir_restore_env("OPENBLAS_NUM_THREADS", oldThreads);
	if (!lib) {
		return "libopenblas.so.0 not found";
	}
	cir_cblas_sgemm = (cir_sgemm_fn)dlsym(lib, "cblas_sgemm");
	cir_openblas_set_num_threads = (cir_set_threads_fn)dlsym(lib, "openblas_set_num_threads");
	cir_openblas_get_corename = (cir_str_fn)dlsym(lib, "openblas_get_corename");
	cir_openblas_get_config = (cir_str_fn)dlsym(lib, "openblas_get_config");
	if (!cir_cblas_sgemm || !cir_openblas_set_num_threads || !cir_openblas_get_corename ||
	    !cir_openblas_get_config) {
		return "libopenblas.so.0 lacks cblas_sgemm or the openblas_* queries";
	}
	return NULL;
}

static const char *cir_blas_corename(void) { return cir_openblas_get_corename(); }
static const char *cir_blas_config(void) { return cir_openblas_get_config(); }
static void cir_blas_set_threads(int n) { cir_openblas_set_num_threads(n); }

// cir_sgemm: row-major C = alpha·op(A)·op(B) + beta·C.
static void cir_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
	cir_cblas_sgemm(CIR_ROW_MAJOR, ta ? CIR_TRANS : CIR_NO_TRANS, tb ? CIR_TRANS : CIR_NO_TRANS,
	                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
