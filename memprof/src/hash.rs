//! A fast hasher for maps keyed by addresses and stack ids.
//!
//! memprof's own maps are keyed by return addresses and ids it made, never
//! by input an attacker chooses, so they need none of SipHash's DoS
//! resistance, and SipHash is a visible share of a large snapshot's time
//! (the figure is in `benches/peers/RESULTS.md`, "Figures behind the
//! code's choices").

/// A multiply-rotate hasher (FxHash's mixing step).
#[derive(Default, Clone, Copy)]
pub(crate) struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// Builds [`AddressHasher`]s.
pub(crate) type AddressHash = std::hash::BuildHasherDefault<AddressHasher>;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::AddressHash;

    #[test]
    fn keys_spread_and_maps_work() {
        let mut map: HashMap<Vec<(u64, usize)>, u32, AddressHash> = HashMap::default();
        for i in 0..10_000u64 {
            map.insert(vec![(0x5555_0000 + i * 16, 0), (0x5555_1000, 1)], i as u32);
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(map[&vec![(0x5555_0000 + 160, 0), (0x5555_1000, 1)]], 10);
    }
}
