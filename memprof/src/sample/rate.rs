//! The sampling rate, and the arithmetic of Poisson sampling on bytes.
//!
//! memprof samples the way Go's runtime and jemalloc do: allocated bytes
//! form a stream, and sample points fall on it as a Poisson process with a
//! mean gap of `rate` bytes. Each thread draws the distance to its next point
//! from an exponential distribution and counts it down as it allocates; the
//! allocation that crosses the point is sampled. An allocation of `s` bytes is
//! therefore sampled with probability `1 - exp(-s / rate)`, and a sample of it
//! stands for `1 / (1 - exp(-s / rate))` allocations. Summing those weights
//! gives unbiased estimates of allocated and in-use bytes and objects.

use core::sync::atomic::{AtomicU64, Ordering};

pub(crate) use crate::config::DEFAULT_RATE;

/// Rate value meaning "not yet configured": `MEMPROF_RATE` is read lazily on
/// the first slow path.
const UNSET: u64 = u64::MAX;

static RATE: AtomicU64 = AtomicU64::new(UNSET);

/// Bumped on every rate change so threads redraw their countdown promptly.
static RATE_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Returns the current sampling rate in bytes (0: off, 1: every allocation).
pub fn rate() -> u64 {
    match RATE.load(Ordering::Relaxed) {
        UNSET => init_from_env(),
        rate => rate,
    }
}

/// Sets the mean number of bytes between samples.
///
/// `0` turns sampling off; `1` samples every allocation with weight 1
/// (exact mode, for tests). Safe to call at any time from any thread: each
/// thread picks up the new rate at its next sample point, or within 64 MiB of
/// allocation when sampling was off.
///
/// ```
/// memprof::set_rate(1 << 20); // one sample per MiB on average
/// assert_eq!(memprof::rate(), 1 << 20);
/// ```
pub fn set_rate(bytes: u64) {
    // Make sure a later lazy read of MEMPROF_RATE cannot overwrite the code's
    // choice: code wins over the environment once it has spoken.
    let _ = rate();
    RATE.store(bytes.min(UNSET - 1), Ordering::Relaxed);
    RATE_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The current rate generation (see [`set_rate`]).
#[inline]
pub(crate) fn generation() -> u64 {
    RATE_GENERATION.load(Ordering::Relaxed)
}

/// Reads `MEMPROF_RATE` (without allocating: the allocator's slow path is
/// where the rate is first read).
#[cold]
fn init_from_env() -> u64 {
    let rate = crate::config::env::rate().unwrap_or(DEFAULT_RATE);
    // Only the first initialiser wins; a racing thread reads its value.
    match RATE.compare_exchange(UNSET, rate, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => rate,
        Err(current) => current,
    }
}

/// The weight of a sample of `size` bytes taken at `rate`: how many
/// allocations of that size it stands for.
///
/// `1 / (1 - exp(-size / rate))`. For `size >> rate` this tends to 1 (such
/// allocations are nearly always sampled); for `size << rate` to
/// `rate / size`. At rate 1 every allocation is sampled and the weight is
/// exactly 1.
///
/// Below `size / rate = 1/4` (every block under 128 KiB at the default
/// rate) it sums a series instead of calling libm's `expm1`: see
/// `neg_ln_unit` for why the sampled path avoids libm.
#[inline]
pub(crate) fn sample_weight(size: u64, rate: u64) -> f64 {
    if rate <= 1 {
        return 1.0;
    }
    let x = size as f64 / rate as f64;
    if x <= 0.0 {
        // size 0 cannot be sampled; keep the arithmetic finite.
        return 1.0;
    }
    if x < 0.25 {
        // x / (1 - e^-x) = 1 + x/2 + x^2/12 - x^4/720 + x^6/30240
        // - x^8/1209600 + x^10/47900160 - ... (the Bernoulli numbers);
        // the first term left out is under 2e-14 of the sum for x < 1/4.
        let x2 = x * x;
        let even =
            x2 * (1.0 / 12.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 30240.0 - x2 / 1_209_600.0)));
        return (1.0 + 0.5 * x + even) / x;
    }
    1.0 / -(-x).exp_m1()
}

/// Draws the distance in bytes to the next sample point.
///
/// `uniform` is a value in (0, 1]; the result is exponentially distributed
/// with mean `rate`, capped so that the countdown never overflows.
#[inline]
pub(crate) fn next_sample_distance(uniform: f64, rate: u64) -> i64 {
    if rate <= 1 {
        return 0;
    }
    let distance = neg_ln_unit(uniform) * rate as f64;
    if distance >= (1u64 << 62) as f64 {
        1 << 62
    } else {
        distance as i64
    }
}

/// `-ln(u)` for `u` in (0, 1], without a call into libm.
///
/// A sample comes once per `rate` bytes, and by then libm's `log` and
/// `expm1` (and their tables) have left the caches, so each call costs
/// cache misses on every sample; inline arithmetic keeps the sample's code
/// and data in lines it touches anyway (the cachegrind figures are in
/// `benches/peers/RESULTS.md`, "Figures behind the code's choices").
///
/// Writes `u = m * 2^e` with `m` in [sqrt(1/2), sqrt(2)) and sums the
/// series `ln m = 2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| <= 0.1716`, to
/// `s^15`: the first term left out is under 2e-14.
#[inline]
fn neg_ln_unit(u: f64) -> f64 {
    if !(f64::MIN_POSITIVE..=1.0).contains(&u) {
        // Not a value `next_uniform` returns (its smallest is 2^-53).
        return -u.ln();
    }
    let bits = u.to_bits();
    let mut exponent = (bits >> 52) as i64 - 1023;
    // The mantissa with a zero exponent: [1, 2).
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let odd = s2
        * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 / 15.0))))));
    let ln_m = 2.0 * s * (1.0 + odd);
    -(exponent as f64 * core::f64::consts::LN_2 + ln_m)
}

/// A small, fast generator for the exponential draws (xorshift64*).
///
/// Quality needs are modest: the draws only have to be independent of the
/// allocation pattern. Seeded per thread.
#[derive(Clone, Copy)]
pub(crate) struct SampleRng(u64);

impl SampleRng {
    pub(crate) const fn new(seed: u64) -> Self {
        // xorshift must not start at zero.
        SampleRng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The generator's state, to store back in its thread-local.
    pub(crate) fn state(&self) -> u64 {
        self.0
    }

    /// Returns a uniform value in (0, 1].
    #[inline]
    pub(crate) fn next_uniform(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11; // 53 bits
        (bits as f64 + 1.0) / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_poisson_estimator() {
        assert_eq!(sample_weight(100, 1), 1.0);
        let rate = 524_288;
        // Small blocks stand for about rate/size blocks.
        let w = sample_weight(512, rate);
        assert!((w - (rate as f64 / 512.0 + 0.5)).abs() < 0.01, "{w}");
        // Huge blocks are nearly always sampled.
        assert!((sample_weight(64 << 20, rate) - 1.0).abs() < 1e-9);
    }

    /// The series in `sample_weight` against libm's `expm1`, on both sides
    /// of its 1/4 cut-off and at the sizes the sampler sees.
    #[test]
    fn weights_match_libm_to_5e_14() {
        let rate = 524_288u64;
        let mut size = 1u64;
        while size < 64 * rate {
            for s in [size, size + size / 3, size * 2 - 1] {
                let exact = 1.0 / -(-(s as f64) / rate as f64).exp_m1();
                let w = sample_weight(s, rate);
                assert!(
                    ((w - exact) / exact).abs() < 5e-14,
                    "size {s}: {w} vs {exact}"
                );
            }
            size *= 2;
        }
        for rate in [2u64, 3, 4096, 1 << 30] {
            for s in [1u64, (rate / 4).max(1), rate / 4 + 1, rate] {
                let exact = 1.0 / -(-(s as f64) / rate as f64).exp_m1();
                let w = sample_weight(s, rate);
                assert!(((w - exact) / exact).abs() < 5e-14, "rate {rate} size {s}");
            }
        }
    }

    /// `neg_ln_unit` against libm's `ln` over the whole range
    /// `next_uniform` returns, its ends and the octave boundaries included.
    #[test]
    fn neg_ln_unit_matches_libm() {
        let check = |u: f64| {
            let exact = -u.ln();
            let got = neg_ln_unit(u);
            assert!(
                (got - exact).abs() <= 2e-14 * exact.max(1.0),
                "u {u}: {got} vs {exact}"
            );
        };
        let mut rng = SampleRng::new(7);
        for _ in 0..100_000 {
            check(rng.next_uniform());
        }
        for k in 0..=53 {
            let p = 0.5f64.powi(k);
            check(p);
            check(p * core::f64::consts::FRAC_1_SQRT_2);
            check(p * 0.999_999_999);
        }
        check(1.0 - f64::EPSILON / 2.0);
        check(1.0 / (1u64 << 53) as f64);
        assert_eq!(neg_ln_unit(1.0), 0.0);
    }

    #[test]
    fn draws_have_the_requested_mean() {
        let mut rng = SampleRng::new(42);
        let n = 200_000;
        let rate = 4096;
        let sum: i64 = (0..n)
            .map(|_| next_sample_distance(rng.next_uniform(), rate))
            .sum();
        let mean = sum as f64 / n as f64;
        // Standard error of the mean is rate / sqrt(n) ~ 9.2; allow 6 sigma.
        assert!(
            (mean - rate as f64).abs() < 6.0 * rate as f64 / (n as f64).sqrt(),
            "{mean}"
        );
    }
}
