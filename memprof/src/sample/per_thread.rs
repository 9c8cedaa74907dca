//! What one thread samples at: its rate, and the distance to its next
//! sample point drawn from its own generator. The cells live in
//! `thread_state`; the arithmetic lives in [`super::rate`].

use super::rate::{self, next_sample_distance, SampleRng};
use crate::thread_state::{self, NO_CONTEXT, UNDECIDED_CONTEXT};

/// The rate this thread samples at: its override, else 1 (every
/// allocation) while it belongs to a tracking context, else the global rate.
pub(crate) fn effective_rate() -> u64 {
    match thread_state::rate_override() {
        Some(rate) => rate,
        None => match thread_state::context() {
            NO_CONTEXT | UNDECIDED_CONTEXT => rate::rate(),
            _ => 1,
        },
    }
}

/// Bytes from here to this thread's next sample point at `rate`, drawn
/// from its generator (`rate` itself if its thread-locals are gone).
pub(crate) fn draw_distance(rate: u64) -> i64 {
    thread_state::with_rng_state(|state| {
        let mut rng = SampleRng::new(*state);
        let distance = next_sample_distance(rng.next_uniform(), rate);
        *state = rng.state();
        distance
    })
    .unwrap_or(rate as i64)
}
