//! `StackUsage`: a cheap reading of in-use bytes per stack, for time series.
//!
//! Reads the per-stack counters only (lock-free, no symbolization), so the
//! history sampler can take one every few seconds at negligible cost and the
//! leak finder can fit growth trends to them.

use serde::{Deserialize, Serialize};

use crate::stack::STACKS;

/// In-use bytes of the largest stacks at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackUsage {
    /// When it was read, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `(stack id, estimated in-use bytes)`, largest first.
    pub stacks: Vec<(u32, f64)>,
}

/// Reads the in-use estimate of the `top_n` largest stacks.
pub fn stack_usage(top_n: usize) -> StackUsage {
    crate::thread_state::unsampled(|| {
        let mut stacks: Vec<(u32, f64)> = (0..STACKS.id_limit())
            .filter_map(|id| STACKS.counters(id).map(|c| (id, c.inuse_bytes)))
            .filter(|&(_, bytes)| bytes > 0.0)
            .collect();
        stacks.sort_by(|a, b| b.1.total_cmp(&a.1));
        stacks.truncate(top_n);
        StackUsage {
            unix_ms: super::snapshot::unix_ms(),
            stacks,
        }
    })
}
