//! `rte_flow` rules from [`SteeringRule`]s: `eth / ipv4 dst is A / tcp dst is P (mask M) →
//! queue Q`. Real NICs install them; the virtual devices here can only validate them (net_tap),
//! which is what the tests exercise.

use std::ffi::CStr;
use std::ptr::{self, NonNull};

use super::error::DpdkError;
use crate::stack::steering::SteeringRule;

/// The C structures of one rule, kept together so the pointers between them stay valid.
struct RuleParts {
    attr: dpdk_sys::rte_flow_attr,
    ipv4_spec: dpdk_sys::rte_flow_item_ipv4,
    ipv4_mask: dpdk_sys::rte_flow_item_ipv4,
    tcp_spec: dpdk_sys::rte_flow_item_tcp,
    tcp_mask: dpdk_sys::rte_flow_item_tcp,
    queue: dpdk_sys::rte_flow_action_queue,
}

impl RuleParts {
    fn new(rule: &SteeringRule) -> Box<Self> {
        // SAFETY: all of these are plain C data for which zero is the documented "match
        // anything / default" value.
        let mut p: Box<Self> = Box::new(unsafe { std::mem::zeroed() });
        p.attr.set_ingress(1);
        p.ipv4_spec.hdr.dst_addr = u32::from(rule.dst_ip).to_be();
        p.ipv4_mask.hdr.dst_addr = u32::MAX;
        p.tcp_spec.hdr.dst_port = rule.dst_port.to_be();
        p.tcp_mask.hdr.dst_port = rule.port_mask.to_be();
        p.queue.index = rule.queue;
        p
    }

    /// The pattern and action arrays, pointing into `self`.
    fn arrays(&self) -> ([dpdk_sys::rte_flow_item; 4], [dpdk_sys::rte_flow_action; 2]) {
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| {
            dpdk_sys::rte_flow_item {
                type_,
                spec,
                last: ptr::null(),
                mask,
            }
        };
        let pattern = [
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH,
                ptr::null(),
                ptr::null(),
            ),
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV4,
                ptr::from_ref(&self.ipv4_spec).cast(),
                ptr::from_ref(&self.ipv4_mask).cast(),
            ),
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_TCP,
                ptr::from_ref(&self.tcp_spec).cast(),
                ptr::from_ref(&self.tcp_mask).cast(),
            ),
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END,
                ptr::null(),
                ptr::null(),
            ),
        ];
        let actions = [
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: ptr::from_ref(&self.queue).cast(),
            },
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_END,
                conf: ptr::null(),
            },
        ];
        (pattern, actions)
    }
}

fn flow_error(
    call: &'static str,
    port: u16,
    rule: &SteeringRule,
    rc: i32,
    e: &dpdk_sys::rte_flow_error,
) -> DpdkError {
    let detail = if e.message.is_null() {
        String::new()
    } else {
        // SAFETY: DPDK sets `message` to a static NUL-terminated string or leaves it null.
        unsafe { CStr::from_ptr(e.message) }
            .to_string_lossy()
            .into_owned()
    };
    let mut err = DpdkError::call(call, format!("port {port}: {rule:?}"), rc);
    if let DpdkError::Call { message, .. } = &mut err
        && !detail.is_empty()
    {
        message.push_str(": ");
        message.push_str(&detail);
    }
    err
}

/// Asks the device whether it can install `rule` (nothing is installed).
pub fn validate(port: u16, rule: &SteeringRule) -> Result<(), DpdkError> {
    let parts = RuleParts::new(rule);
    let (pattern, actions) = parts.arrays();
    // SAFETY: rte_flow_error is plain data.
    let mut e: dpdk_sys::rte_flow_error = unsafe { std::mem::zeroed() };
    // SAFETY: attr, pattern and actions point into `parts`, alive for the call; `e` is a valid
    // out-pointer. DPDK does not keep the pointers.
    let rc = unsafe {
        dpdk_sys::rte_flow_validate(
            port,
            &parts.attr,
            pattern.as_ptr(),
            actions.as_ptr(),
            &mut e,
        )
    };
    if rc != 0 {
        return Err(flow_error("rte_flow_validate", port, rule, rc, &e));
    }
    Ok(())
}

/// An installed rule; removed on drop.
#[derive(Debug)]
pub struct Flow {
    port: u16,
    raw: NonNull<dpdk_sys::rte_flow>,
}

// SAFETY: the handle is only passed back to rte_flow_destroy, which is thread-safe per port
// in DPDK 22.11 (flow ops take the port's flow lock).
unsafe impl Send for Flow {}
// SAFETY: a shared `&Flow` exposes nothing (no methods read the handle); only Drop uses it.
unsafe impl Sync for Flow {}

/// Installs `rule` on `port`.
pub fn create(port: u16, rule: &SteeringRule) -> Result<Flow, DpdkError> {
    let parts = RuleParts::new(rule);
    let (pattern, actions) = parts.arrays();
    // SAFETY: rte_flow_error is plain data.
    let mut e: dpdk_sys::rte_flow_error = unsafe { std::mem::zeroed() };
    // SAFETY: as in `validate`; the PMD copies what it keeps.
    let raw = unsafe {
        dpdk_sys::rte_flow_create(
            port,
            &parts.attr,
            pattern.as_ptr(),
            actions.as_ptr(),
            &mut e,
        )
    };
    match NonNull::new(raw) {
        Some(raw) => Ok(Flow { port, raw }),
        None => Err(flow_error(
            "rte_flow_create",
            port,
            rule,
            -super::error::rte_errno(),
            &e,
        )),
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        // SAFETY: rte_flow_error is plain data.
        let mut e: dpdk_sys::rte_flow_error = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` came from rte_flow_create on this port and is destroyed once.
        let rc = unsafe { dpdk_sys::rte_flow_destroy(self.port, self.raw.as_ptr(), &mut e) };
        if rc != 0 {
            tracing::warn!(port = self.port, rc, "rte_flow_destroy failed");
        }
    }
}
