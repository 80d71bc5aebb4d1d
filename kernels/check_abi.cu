// check_abi.cu: compile-time check that the declarations written in third_party agree with the
// vendor's cuBLASLt header, when the toolkit has one (`make kernels-abi`; CI runs it). Not linked.
#include <cstddef>
#include "../third_party/cublaslt/cirlt.h"
#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
static_assert((int)CIRLT_R_32F == (int)CUDA_R_32F, "CUDA_R_32F");
static_assert((int)CIRLT_R_16F == (int)CUDA_R_16F, "CUDA_R_16F");
static_assert((int)CIRLT_R_16BF == (int)CUDA_R_16BF, "CUDA_R_16BF");
static_assert((int)CIRLT_COMPUTE_32F == (int)CUBLAS_COMPUTE_32F, "CUBLAS_COMPUTE_32F");
static_assert((int)CIRLT_OP_N == (int)CUBLAS_OP_N && (int)CIRLT_OP_T == (int)CUBLAS_OP_T, "cublasOperation_t");
static_assert((int)CIRLT_DESC_TRANSA == (int)CUBLASLT_MATMUL_DESC_TRANSA, "TRANSA");
static_assert((int)CIRLT_DESC_TRANSB == (int)CUBLASLT_MATMUL_DESC_TRANSB, "TRANSB");
static_assert((int)CIRLT_DESC_EPILOGUE == (int)CUBLASLT_MATMUL_DESC_EPILOGUE, "EPILOGUE");
static_assert((int)CIRLT_DESC_BIAS_POINTER == (int)CUBLASLT_MATMUL_DESC_BIAS_POINTER, "BIAS_POINTER");
static_assert((int)CIRLT_DESC_BIAS_DATA_TYPE == (int)CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, "BIAS_DATA_TYPE");
static_assert((int)CIRLT_EPILOGUE_DEFAULT == (int)CUBLASLT_EPILOGUE_DEFAULT, "EPILOGUE_DEFAULT");
static_assert((int)CIRLT_EPILOGUE_BIAS == (int)CUBLASLT_EPILOGUE_BIAS, "EPILOGUE_BIAS");
static_assert((int)CIRLT_PREF_MAX_WORKSPACE_BYTES == (int)CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, "MAX_WORKSPACE");
static_assert((int)CIRLT_PREF_MIN_ALIGNMENT_A_BYTES == (int)CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, "ALIGN_A");
static_assert((int)CIRLT_PREF_MIN_ALIGNMENT_B_BYTES == (int)CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, "ALIGN_B");
static_assert((int)CIRLT_PREF_MIN_ALIGNMENT_C_BYTES == (int)CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, "ALIGN_C");
static_assert((int)CIRLT_PREF_MIN_ALIGNMENT_D_BYTES == (int)CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, "ALIGN_D");
static_assert(sizeof(cirlt_algo) == sizeof(cublasLtMatmulAlgo_t), "algo size");
static_assert(sizeof(cirlt_heuristic) == sizeof(cublasLtMatmulHeuristicResult_t), "heuristic size");
static_assert(offsetof(cirlt_heuristic, workspace_size) == offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize),
              "workspaceSize");
static_assert(offsetof(cirlt_heuristic, state) == offsetof(cublasLtMatmulHeuristicResult_t, state), "state");
static_assert(offsetof(cirlt_heuristic, waves_count) == offsetof(cublasLtMatmulHeuristicResult_t, wavesCount),
              "wavesCount");
#endif
#if __has_include(<nccl.h>)
#include <nccl.h>
#include "../third_party/nccl/cirnccl.h"
static_assert(sizeof(cirnccl_unique_id) == sizeof(ncclUniqueId), "ncclUniqueId");
static_assert((int)CIRNCCL_FLOAT32 == (int)ncclFloat32 && (int)CIRNCCL_BFLOAT16 == (int)ncclBfloat16, "ncclDataType_t");
static_assert((int)CIRNCCL_SUM == (int)ncclSum && (int)CIRNCCL_AVG == (int)ncclAvg, "ncclRedOp_t");
#endif
