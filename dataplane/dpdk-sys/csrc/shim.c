#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>

#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t shim_rte_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }
uint16_t shim_rte_eth_tx_prepare(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_prepare(port, queue, pkts, n); }

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, n); }
void shim_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n) { rte_pktmbuf_free_bulk(mbufs, n); }
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
void shim_rte_pktmbuf_refcnt_update(struct rte_mbuf *m, int16_t v) { rte_pktmbuf_refcnt_update(m, v); }
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
unsigned shim_rte_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }

int shim_rte_errno(void) { return rte_errno; }
unsigned shim_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t shim_rte_rdtsc(void) { return rte_rdtsc(); }
void shim_rte_pause(void) { rte_pause(); }

/*
 * Flag values the Rust side (dataplane::dpdk::flags) hard-codes, because bindgen does not expand
 * DPDK's function-like RTE_BIT64 macros. A DPDK that changes one fails to compile here.
 */
#define SHIM_CHECK(name, value) _Static_assert((name) == (value), #name " changed")
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM, 1ULL << 1);
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_UDP_CKSUM, 1ULL << 2);
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_TCP_CKSUM, 1ULL << 3);
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_TCP_LRO, 1ULL << 4);
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_SCATTER, 1ULL << 13);
SHIM_CHECK(RTE_ETH_RX_OFFLOAD_RSS_HASH, 1ULL << 19);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM, 1ULL << 1);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_UDP_CKSUM, 1ULL << 2);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_TCP_CKSUM, 1ULL << 3);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_TCP_TSO, 1ULL << 5);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_MULTI_SEGS, 1ULL << 15);
SHIM_CHECK(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE, 1ULL << 16);
SHIM_CHECK(RTE_ETH_RSS_IPV4, 1ULL << 2);
SHIM_CHECK(RTE_ETH_RSS_FRAG_IPV4, 1ULL << 3);
SHIM_CHECK(RTE_ETH_RSS_NONFRAG_IPV4_TCP, 1ULL << 4);
SHIM_CHECK(RTE_ETH_RSS_NONFRAG_IPV4_UDP, 1ULL << 5);
SHIM_CHECK(RTE_ETH_RSS_IPV6, 1ULL << 8);
SHIM_CHECK(RTE_ETH_RSS_FRAG_IPV6, 1ULL << 9);
SHIM_CHECK(RTE_ETH_RSS_NONFRAG_IPV6_TCP, 1ULL << 10);
SHIM_CHECK(RTE_ETH_RSS_NONFRAG_IPV6_UDP, 1ULL << 11);
SHIM_CHECK(RTE_MBUF_F_TX_IPV4, 1ULL << 55);
SHIM_CHECK(RTE_MBUF_F_TX_IP_CKSUM, 1ULL << 54);
SHIM_CHECK(RTE_MBUF_F_TX_TCP_CKSUM, 1ULL << 52);
SHIM_CHECK(RTE_MBUF_F_TX_TCP_SEG, 1ULL << 50);
