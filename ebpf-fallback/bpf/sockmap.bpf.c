// SPDX-License-Identifier: GPL-2.0
// In-kernel TCP splicing for SciStream-RS (the `sockmap` engine).
//
// SOCKS holds both sockets of every proxied pair, keyed by socket cookie; PEERS maps each cookie
// to its peer's. The verdict hands a socket's bytes either to user space (SK_PASS) or straight to
// the peer's send path (redirect). It redirects only while the direction is *armed* (user space
// wrote ARMED[cookie]) and user space has forwarded every byte passed before (ARMED's value, the
// bytes user space consumed, equals STATS.passed). That single rule gives:
//   - no insert window: before both sockets are in SOCKS and armed, bytes go to user space, which
//     forwards them, so nothing is redirected to a socket that is not in the map yet;
//   - order: passes only happen while user space is behind, and a redirect only once it caught
//     up, so every passed byte reaches the peer before any later redirected byte;
//   - backpressure: user space disarms a direction whose peer stops reading; the bytes then stay
//     charged to this socket's receive buffer, so TCP flow control throttles the sender.
// Verdict runs on one socket are serialized by the socket lock, so STATS needs no atomics
// against itself; the adds are atomic for user space's readers.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "shared.h"

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, SOCKMAP_MAX_SOCKETS);
    __uint(key_size, 8);
    __uint(value_size, 4); // aya writes the fd as an i32
} SOCKS SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SOCKMAP_MAX_SOCKETS);
    __type(key, __u64);
    __type(value, __u64);
} PEERS SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SOCKMAP_MAX_SOCKETS);
    __type(key, __u64);
    __type(value, struct sock_stats);
} STATS SEC(".maps");

// cookie -> bytes user space consumed from this socket and wrote into the peer. Present: armed.
// No preallocation, so a value the verdict is reading is never recycled under it.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SOCKMAP_MAX_SOCKETS);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, __u64);
    __type(value, __u64);
} ARMED SEC(".maps");

SEC("sk_skb/stream_verdict")
int verdict(struct __sk_buff *skb)
{
    // A FIN-only skb must never be redirected or queued: an empty skb on a psock backlog is taken
    // as an error and silently disables the peer's transmit path. The FIN itself is already
    // recorded in the socket's shutdown state, so dropping the empty skb loses nothing.
    if (skb->len == 0)
        return SK_DROP;
    __u64 cookie = bpf_get_socket_cookie(skb);
    struct sock_stats *st = bpf_map_lookup_elem(&STATS, &cookie);
    if (!st)
        return SK_PASS; // not one of ours
    __u64 *peer = bpf_map_lookup_elem(&PEERS, &cookie);
    __u64 *consumed = bpf_map_lookup_elem(&ARMED, &cookie);
    if (peer && consumed && *consumed == st->passed) {
        __sync_fetch_and_add(&st->redirected, (__u64)skb->len);
        // flags 0: the peer's egress (its send path).
        return bpf_sk_redirect_hash(skb, &SOCKS, peer, 0);
    }
    __sync_fetch_and_add(&st->passed, (__u64)skb->len);
    return SK_PASS;
}

char _license[] SEC("license") = "GPL";
