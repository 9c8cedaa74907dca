//! How far a sampled estimate may be from the truth.
//!
//! A sampled block of `s` bytes, sampled with probability `p = 1 -
//! exp(-s / rate)`, stands for `w = 1 / p` blocks; the sum of `s * w` over
//! the samples is an unbiased (Horvitz-Thompson) estimate of the bytes, and
//! the sum of `s² * w * (w - 1)` over the samples is an unbiased estimate of
//! its variance (each block is sampled independently; `(1 - p) / p²` is
//! `w (w - 1)`). In exact mode every weight is 1 and the variance is 0.
//! With few samples the variance estimate is itself rough, so views show
//! the sample count beside the interval.

use serde::{Deserialize, Serialize};

/// The spread of one sampled estimate of bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Uncertainty {
    /// Samples the estimate was made from.
    pub samples: u64,
    /// Estimated variance of the estimate, in bytes².
    pub variance: f64,
}

impl Uncertainty {
    /// Adds a sample of `size` bytes and weight `weight`.
    pub fn add_sample(&mut self, size: usize, weight: f64) {
        let size = size as f64;
        self.samples += 1;
        self.variance += size * size * weight * (weight - 1.0).max(0.0);
    }

    /// Half the width of the normal 95% confidence interval, in bytes: the
    /// estimate is within `± margin_95()` of the truth 19 times in 20 (for
    /// more than a handful of samples). 0 when exact.
    pub fn margin_95(&self) -> f64 {
        1.96 * self.variance.max(0.0).sqrt()
    }

    /// Whether every sample stood for itself alone (nothing estimated).
    pub fn is_exact(&self) -> bool {
        self.variance == 0.0
    }

    /// `± 1.2 MiB (95%, 38 samples)`, or `exact, 38 samples`.
    pub fn describe(&self) -> String {
        if self.is_exact() {
            format!("exact, {} samples", self.samples)
        } else {
            format!(
                "± {} (95%, {} samples)",
                crate::human::format_bytes_signed(self.margin_95()),
                self.samples
            )
        }
    }
}

impl std::ops::AddAssign for Uncertainty {
    fn add_assign(&mut self, other: Uncertainty) {
        self.samples += other.samples;
        self.variance += other.variance;
    }
}

/// The 97.5% quantile of Student's t with `dof` degrees of freedom, for a
/// 95% interval from a fit of few points (1.96 from 120 on).
pub(crate) fn t_975(dof: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => TABLE[dof - 1],
        31..=60 => 2.021,
        61..=119 => 2.0,
        _ => 1.96,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::rate::sample_weight;

    /// Draws a sampled estimate of a known population many times: the
    /// interval covers the truth about 95% of the time.
    #[test]
    fn the_interval_covers_the_truth_nineteen_times_in_twenty() {
        let rate = 64 * 1024;
        // 2,000 blocks of 512..8703 bytes: 9.2 MB, about 140 samples.
        let sizes: Vec<usize> = (0..2000).map(|i| 512 + (i * 37) % 8192).collect();
        let truth: f64 = sizes.iter().map(|&s| s as f64).sum();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            // xorshift64*: a fixed, reproducible stream.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        };
        let trials = 2000;
        let mut covered = 0;
        for _ in 0..trials {
            let (mut estimate, mut spread) = (0.0, Uncertainty::default());
            for &s in &sizes {
                let w = sample_weight(s as u64, rate);
                if uniform() < 1.0 / w {
                    estimate += s as f64 * w;
                    spread.add_sample(s, w);
                }
            }
            if (estimate - truth).abs() <= spread.margin_95() {
                covered += 1;
            }
        }
        let coverage = covered as f64 / trials as f64;
        assert!(
            (0.92..=0.975).contains(&coverage),
            "95% intervals covered the truth {coverage:.3} of the time"
        );
    }

    #[test]
    fn exact_samples_have_no_spread() {
        let mut u = Uncertainty::default();
        u.add_sample(100, 1.0);
        u.add_sample(5000, 1.0);
        assert!(u.is_exact());
        assert_eq!(u.margin_95(), 0.0);
        assert_eq!(u.samples, 2);
        assert_eq!(u.describe(), "exact, 2 samples");
        // One 512-byte sample at 512 KiB stands for ~1024 blocks, 512 KiB,
        // give or take about twice that: 1.96 * 512 * sqrt(1024.5 * 1023.5).
        u.add_sample(512, 1024.5);
        assert_eq!(u.describe(), "± 1004 KiB (95%, 3 samples)");
    }

    #[test]
    fn student_t_falls_to_the_normal_quantile() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(10), 2.228);
        assert_eq!(t_975(500), 1.96);
        assert!(t_975(0).is_infinite());
        let mut last = f64::INFINITY;
        for dof in 1..200 {
            assert!(t_975(dof) <= last, "{dof}");
            last = t_975(dof);
        }
    }
}
