//! Fixed-point sums of weighted samples.
//!
//! A sample stands for `weight` blocks of `bytes` bytes, `weight` a float.
//! Counters keep such estimates as integers in fixed point, so a sample is
//! added with one `fetch_add` (a float sum needs a compare-and-swap loop,
//! which retries under contention) and a sample freed subtracts exactly
//! what its allocation added: in-use figures return exactly to zero.

/// A sample's contribution to the counters, in fixed point. Computed the
/// same way from the same `(weight, bytes)` when it is allocated and when it
/// is freed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fixed {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
}

impl Fixed {
    const OBJECT_SCALE: f64 = 65536.0;
    const BYTE_SCALE: f64 = 256.0;

    pub(crate) fn new(bytes: usize, weight: f64) -> Fixed {
        // Rounded to nearest by adding a half (the values are not negative;
        // `f64::round` is a libm call without SSE4.1). `as` saturates and
        // maps NaN to 0: never a panic.
        Fixed {
            objects: (weight * Self::OBJECT_SCALE + 0.5) as u64,
            bytes: (weight * bytes as f64 * Self::BYTE_SCALE + 0.5) as u64,
        }
    }

    /// An objects sum as a number of objects.
    pub(crate) fn objects(sum: u64) -> f64 {
        sum as f64 / Self::OBJECT_SCALE
    }

    /// A bytes sum as a number of bytes.
    pub(crate) fn bytes(sum: u64) -> f64 {
        sum as f64 / Self::BYTE_SCALE
    }

    /// `alloc - freed` of two wrapping sums, as a non-negative count.
    pub(crate) fn in_use(alloc: u64, freed: u64) -> u64 {
        (alloc.wrapping_sub(freed) as i64).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_survives_wrapping_sums() {
        // Sums near the wrap point still give the right difference, and a
        // free seen before its allocation (stripes are read one by one)
        // reads as zero, not as 2^64.
        assert_eq!(Fixed::in_use(5, u64::MAX - 2), 8);
        assert_eq!(Fixed::in_use(3, 5), 0);
        assert_eq!(
            Fixed::new(10, f64::NAN),
            Fixed {
                objects: 0,
                bytes: 0
            }
        );
        let f = Fixed::new(100, 2.5);
        assert_eq!(
            (Fixed::objects(f.objects), Fixed::bytes(f.bytes)),
            (2.5, 250.0)
        );
    }
}
