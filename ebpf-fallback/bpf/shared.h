/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Types and limits shared by the sockmap BPF program and its user-space driver.
 *
 * This header is the single definition: build.rs compiles it into the BPF object with clang and
 * generates the Rust declarations from it with bindgen (src/shared.rs includes the result). */
#ifndef SCISTREAM_SOCKMAP_SHARED_H
#define SCISTREAM_SOCKMAP_SHARED_H

#include <linux/types.h>

/* Sockets the maps can hold (two per proxied connection). */
#define SOCKMAP_MAX_SOCKETS 65536

/* What the verdict did with the bytes received on one socket (map STATS, key: socket cookie).
 * Written only by the verdict program; user space reads it. */
struct sock_stats {
    /* Bytes handed to user space (SK_PASS): before the pair is armed, while user space catches
     * up, and while the direction is paused by the watchdog. */
    __u64 passed;
    /* Bytes redirected straight to the peer's send path. */
    __u64 redirected;
};

#endif
