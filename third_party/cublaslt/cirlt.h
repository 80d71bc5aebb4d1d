/* cirlt.h: the part of the cuBLASLt C API that cir calls, declared for dlopen.
 *
 * Written for cir from NVIDIA's public cuBLAS documentation ("Using the cuBLASLt API":
 * cublasLtCreate, cublasLtMatmulDescCreate/SetAttribute, cublasLtMatrixLayoutCreate,
 * cublasLtMatmulPreferenceCreate/SetAttribute, cublasLtMatmulAlgoGetHeuristic, cublasLtMatmul;
 * the enums cublasComputeType_t, cublasOperation_t, cublasLtMatmulDescAttributes_t,
 * cublasLtEpilogue_t, cublasLtMatmulPreferenceAttributes_t) and the CUDA Runtime API's
 * cudaDataType_t. Values are ABI constants, stable from CUDA 11 to 13; kernels/check_abi.cu
 * checks them against the vendor header. */
#ifndef CIRLT_H
#define CIRLT_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int cirlt_status;           /* cublasStatus_t; 0 is success */
typedef void *cirlt_handle;         /* cublasLtHandle_t */
typedef void *cirlt_matmul_desc;    /* cublasLtMatmulDesc_t */
typedef void *cirlt_layout;         /* cublasLtMatrixLayout_t */
typedef void *cirlt_preference;     /* cublasLtMatmulPreference_t */

/* cublasLtMatmulAlgo_t: 64 opaque bytes. */
typedef struct { uint64_t data[8]; } cirlt_algo;

/* cublasLtMatmulHeuristicResult_t. */
typedef struct {
  cirlt_algo algo;
  size_t workspace_size;
  cirlt_status state;
  float waves_count;
  int reserved[4];
} cirlt_heuristic;

enum {
  CIRLT_R_32F = 0,              /* cudaDataType_t CUDA_R_32F */
  CIRLT_R_16F = 2,              /* CUDA_R_16F */
  CIRLT_R_16BF = 14,            /* CUDA_R_16BF */
  CIRLT_COMPUTE_32F = 68,       /* cublasComputeType_t CUBLAS_COMPUTE_32F */
  CIRLT_OP_N = 0,               /* cublasOperation_t */
  CIRLT_OP_T = 1,
  CIRLT_DESC_TRANSA = 3,        /* cublasLtMatmulDescAttributes_t */
  CIRLT_DESC_TRANSB = 4,
  CIRLT_DESC_EPILOGUE = 7,
  CIRLT_DESC_BIAS_POINTER = 8,
  CIRLT_DESC_BIAS_DATA_TYPE = 26,
  CIRLT_EPILOGUE_DEFAULT = 1,   /* cublasLtEpilogue_t */
  CIRLT_EPILOGUE_BIAS = 4,
  CIRLT_PREF_MAX_WORKSPACE_BYTES = 1, /* cublasLtMatmulPreferenceAttributes_t */
  CIRLT_PREF_MIN_ALIGNMENT_A_BYTES = 5,
  CIRLT_PREF_MIN_ALIGNMENT_B_BYTES = 6,
  CIRLT_PREF_MIN_ALIGNMENT_C_BYTES = 7,
  CIRLT_PREF_MIN_ALIGNMENT_D_BYTES = 8
};

/* Function types, in the order of the symbol table cirlt_api. */
typedef cirlt_status (*cirlt_create_fn)(cirlt_handle *);
typedef cirlt_status (*cirlt_destroy_fn)(cirlt_handle);
typedef size_t (*cirlt_get_version_fn)(void);
typedef cirlt_status (*cirlt_desc_create_fn)(cirlt_matmul_desc *, int compute_type, int scale_type);
typedef cirlt_status (*cirlt_desc_destroy_fn)(cirlt_matmul_desc);
typedef cirlt_status (*cirlt_desc_set_fn)(cirlt_matmul_desc, int attr, const void *buf, size_t size);
typedef cirlt_status (*cirlt_layout_create_fn)(cirlt_layout *, int type, uint64_t rows, uint64_t cols, int64_t ld);
typedef cirlt_status (*cirlt_layout_destroy_fn)(cirlt_layout);
typedef cirlt_status (*cirlt_pref_create_fn)(cirlt_preference *);
typedef cirlt_status (*cirlt_pref_destroy_fn)(cirlt_preference);
typedef cirlt_status (*cirlt_pref_set_fn)(cirlt_preference, int attr, const void *buf, size_t size);
typedef cirlt_status (*cirlt_heuristic_fn)(cirlt_handle, cirlt_matmul_desc, cirlt_layout a, cirlt_layout b,
                                           cirlt_layout c, cirlt_layout d, cirlt_preference,
                                           int requested, cirlt_heuristic *results, int *returned);
typedef cirlt_status (*cirlt_matmul_fn)(cirlt_handle, cirlt_matmul_desc, const void *alpha, const void *a,
                                        cirlt_layout adesc, const void *b, cirlt_layout bdesc, const void *beta,
                                        const void *c, cirlt_layout cdesc, void *d, cirlt_layout ddesc,
                                        const cirlt_algo *algo, void *workspace, size_t workspace_size,
                                        void *stream);

/* The symbols, looked up by these names. */
#define CIRLT_SYMBOLS(X)                                        \
  X(create, cirlt_create_fn, "cublasLtCreate")                  \
  X(destroy, cirlt_destroy_fn, "cublasLtDestroy")               \
  X(get_version, cirlt_get_version_fn, "cublasLtGetVersion")    \
  X(desc_create, cirlt_desc_create_fn, "cublasLtMatmulDescCreate") \
  X(desc_destroy, cirlt_desc_destroy_fn, "cublasLtMatmulDescDestroy") \
  X(desc_set, cirlt_desc_set_fn, "cublasLtMatmulDescSetAttribute") \
  X(layout_create, cirlt_layout_create_fn, "cublasLtMatrixLayoutCreate") \
  X(layout_destroy, cirlt_layout_destroy_fn, "cublasLtMatrixLayoutDestroy") \
  X(pref_create, cirlt_pref_create_fn, "cublasLtMatmulPreferenceCreate") \
  X(pref_destroy, cirlt_pref_destroy_fn, "cublasLtMatmulPreferenceDestroy") \
  X(pref_set, cirlt_pref_set_fn, "cublasLtMatmulPreferenceSetAttribute") \
  X(heuristic, cirlt_heuristic_fn, "cublasLtMatmulAlgoGetHeuristic") \
  X(matmul, cirlt_matmul_fn, "cublasLtMatmul")

/* Sonames tried in order. */
#define CIRLT_SONAMES {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}

#ifdef __cplusplus
}
#endif
#endif
