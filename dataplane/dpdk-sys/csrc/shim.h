/*
 * Out-of-line wrappers for what bindgen cannot bind: DPDK's static-inline fast path and its
 * macros (rte_errno is a per-lcore thread-local, which Rust cannot read directly).
 * Every function is a one-line forward; names are the DPDK name prefixed with shim_.
 */
#ifndef SCISTREAM_DPDK_SHIM_H
#define SCISTREAM_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t shim_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_rte_eth_tx_prepare(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void shim_rte_pktmbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
unsigned shim_rte_mempool_avail_count(const struct rte_mempool *mp);

int shim_rte_errno(void);
unsigned shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
void shim_rte_pause(void);

#endif
