/* cirnccl.h: the part of the NCCL C API that cir calls, declared for dlopen of libnccl.so.2.
 *
 * Written for cir from NVIDIA's public NCCL documentation: "API → Communicator creation and
 * management functions" (ncclGetUniqueId, ncclCommInitAll, ncclCommInitRank, ncclCommDestroy,
 * ncclCommAbort, ncclCommGetAsyncError, ncclGetErrorString), "Collective communication
 * functions" (ncclAllReduce, ncclReduceScatter, ncclAllGather, ncclBroadcast), "Group calls"
 * (ncclGroupStart, ncclGroupEnd) and "Types" (ncclUniqueId of NCCL_UNIQUE_ID_BYTES = 128,
 * ncclDataType_t, ncclRedOp_t, ncclResult_t). The values are the ABI of NCCL 2.x. */
#ifndef CIRNCCL_H
#define CIRNCCL_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int cirnccl_result;   /* ncclResult_t; 0 is ncclSuccess */
typedef void *cirnccl_comm;   /* ncclComm_t */
typedef struct { char internal[128]; } cirnccl_unique_id;

enum {
  CIRNCCL_INT8 = 0,      /* ncclInt8 (ncclChar): gathers and broadcasts move bytes */
  CIRNCCL_FLOAT32 = 7,   /* ncclDataType_t ncclFloat32 */
  CIRNCCL_BFLOAT16 = 9,  /* ncclBfloat16 */
  CIRNCCL_SUM = 0,       /* ncclRedOp_t ncclSum */
  CIRNCCL_AVG = 4,       /* ncclAvg */
  CIRNCCL_IN_PROGRESS = 7 /* ncclResult_t ncclInProgress */
};

typedef cirnccl_result (*cirnccl_get_unique_id_fn)(cirnccl_unique_id *);
typedef cirnccl_result (*cirnccl_comm_init_rank_fn)(cirnccl_comm *, int nranks, cirnccl_unique_id id, int rank);
typedef cirnccl_result (*cirnccl_comm_init_all_fn)(cirnccl_comm *comms, int ndev, const int *devlist);
typedef cirnccl_result (*cirnccl_comm_destroy_fn)(cirnccl_comm);
typedef const char *(*cirnccl_error_string_fn)(cirnccl_result);
typedef cirnccl_result (*cirnccl_all_reduce_fn)(const void *send, void *recv, size_t count, int dtype, int op,
                                                cirnccl_comm, void *stream);
typedef cirnccl_result (*cirnccl_reduce_scatter_fn)(const void *send, void *recv, size_t recvcount, int dtype, int op,
                                                    cirnccl_comm, void *stream);
typedef cirnccl_result (*cirnccl_all_gather_fn)(const void *send, void *recv, size_t sendcount, int dtype,
                                                cirnccl_comm, void *stream);
typedef cirnccl_result (*cirnccl_broadcast_fn)(const void *send, void *recv, size_t count, int dtype, int root,
                                               cirnccl_comm, void *stream);
typedef cirnccl_result (*cirnccl_comm_abort_fn)(cirnccl_comm);
typedef cirnccl_result (*cirnccl_async_error_fn)(cirnccl_comm, cirnccl_result *async_error);
typedef cirnccl_result (*cirnccl_group_fn)(void);

#define CIRNCCL_SYMBOLS(X)                                           \
  X(get_unique_id, cirnccl_get_unique_id_fn, "ncclGetUniqueId")      \
  X(comm_init_rank, cirnccl_comm_init_rank_fn, "ncclCommInitRank")   \
  X(comm_init_all, cirnccl_comm_init_all_fn, "ncclCommInitAll")      \
  X(comm_destroy, cirnccl_comm_destroy_fn, "ncclCommDestroy")        \
  X(error_string, cirnccl_error_string_fn, "ncclGetErrorString")     \
  X(all_reduce, cirnccl_all_reduce_fn, "ncclAllReduce")              \
  X(reduce_scatter, cirnccl_reduce_scatter_fn, "ncclReduceScatter")  \
  X(all_gather, cirnccl_all_gather_fn, "ncclAllGather")              \
  X(broadcast, cirnccl_broadcast_fn, "ncclBroadcast")                \
  X(comm_abort, cirnccl_comm_abort_fn, "ncclCommAbort")              \
  X(async_error, cirnccl_async_error_fn, "ncclCommGetAsyncError")    \
  X(group_start, cirnccl_group_fn, "ncclGroupStart")                 \
  X(group_end, cirnccl_group_fn, "ncclGroupEnd")

#define CIRNCCL_SONAMES {"libnccl.so.2", "libnccl.so"}

#ifdef __cplusplus
}
#endif
#endif
