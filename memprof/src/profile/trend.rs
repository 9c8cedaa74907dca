//! Least-squares trends: "growing N KiB/min", with a fit quality.

use serde::{Deserialize, Serialize};

use super::uncertainty::t_975;

/// A straight-line fit of a value over time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Slope, in the value's unit per second.
    pub per_second: f64,
    /// Coefficient of determination of the fit, 0..=1 (1: a perfect line).
    pub r_squared: f64,
    /// How many points were fitted.
    pub points: usize,
    /// Time between the first and the last point, in seconds.
    pub span_seconds: f64,
    /// Half the width of the slope's 95% confidence interval (Student's t
    /// on the fit's residuals): the slope is within `per_second ±
    /// per_second_ci95` 19 times in 20 if the growth is a line plus noise;
    /// 0 for points exactly on a line.
    #[serde(default)]
    pub per_second_ci95: f64,
}

impl Trend {
    /// Fits `(seconds, value)` points. `None` with fewer than three points or
    /// no spread in time.
    pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
        if points.len() < 3 {
            return None;
        }
        let n = points.len() as f64;
        let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut stt, mut sty, mut syy) = (0.0, 0.0, 0.0);
        for &(t, y) in points {
            stt += (t - mean_t) * (t - mean_t);
            sty += (t - mean_t) * (y - mean_y);
            syy += (y - mean_y) * (y - mean_y);
        }
        if stt <= 0.0 || !stt.is_finite() {
            return None;
        }
        let slope = sty / stt;
        // A flat series is perfectly fitted by a flat line.
        let r_squared = if syy <= 0.0 {
            1.0
        } else {
            (sty * sty / (stt * syy)).clamp(0.0, 1.0)
        };
        // The slope's standard error from the residual sum of squares,
        // syy - slope * sty, over n - 2 degrees of freedom.
        let residual = (syy - slope * sty).max(0.0);
        let dof = points.len() - 2;
        let standard_error = (residual / dof as f64 / stt).sqrt();
        let per_second_ci95 = if standard_error == 0.0 {
            0.0
        } else {
            t_975(dof) * standard_error
        };
        let first = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let last = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        Some(Trend {
            per_second: slope,
            r_squared,
            points: points.len(),
            span_seconds: last - first,
            per_second_ci95,
        })
    }

    /// Whether this is steady growth of at least `min_per_second` with a fit
    /// of at least `min_r_squared`.
    pub fn is_growing(&self, min_per_second: f64, min_r_squared: f64) -> bool {
        self.per_second >= min_per_second && self.r_squared >= min_r_squared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_and_rates_its_quality() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, 100.0 + 5.0 * i as f64))
            .collect();
        let t = Trend::fit(&line).unwrap();
        assert!((t.per_second - 5.0).abs() < 1e-9);
        assert!((t.r_squared - 1.0).abs() < 1e-9);
        assert_eq!(t.span_seconds, 9.0);
        assert!(t.is_growing(1.0, 0.9));

        let flat: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 7.0)).collect();
        let t = Trend::fit(&flat).unwrap();
        assert_eq!(t.per_second, 0.0);
        assert!(!t.is_growing(0.1, 0.5));

        let noisy: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64, if i % 2 == 0 { 0.0 } else { 100.0 }))
            .collect();
        assert!(Trend::fit(&noisy).unwrap().r_squared < 0.1);

        assert!(Trend::fit(&[(0.0, 1.0), (1.0, 2.0)]).is_none());
        assert!(Trend::fit(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]).is_none());
    }

    /// Noisy lines of a known slope, fitted many times: the interval
    /// covers the true slope about 95% of the time, for few points too.
    #[test]
    fn the_slope_interval_covers_the_true_slope_nineteen_times_in_twenty() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        for points in [5, 12, 60] {
            let trials = 3000;
            let mut covered = 0;
            for _ in 0..trials {
                let line: Vec<(f64, f64)> = (0..points)
                    .map(|i| {
                        // Box-Muller: a standard normal from two uniforms.
                        let noise = (-2.0 * uniform().ln()).sqrt()
                            * (std::f64::consts::TAU * uniform()).cos();
                        (
                            i as f64 * 5.0,
                            1000.0 + 40.0 * i as f64 * 5.0 + 300.0 * noise,
                        )
                    })
                    .collect();
                let t = Trend::fit(&line).unwrap();
                if (t.per_second - 40.0).abs() <= t.per_second_ci95 {
                    covered += 1;
                }
            }
            let coverage = covered as f64 / trials as f64;
            assert!(
                (0.93..=0.97).contains(&coverage),
                "{points} points: covered {coverage:.3}"
            );
        }
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64)).collect();
        assert!(Trend::fit(&line).unwrap().per_second_ci95 < 1e-6);
    }
}
