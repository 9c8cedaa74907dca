//! Typed mallctl keys.
//!
//! `tikv_jemalloc_ctl::raw::read::<T>` is `unsafe` because `T` must be the
//! exact C type jemalloc documents for the name (and it panics on a size
//! mismatch). [`Key`] moves that obligation to one place: each key is
//! declared once in [`super::keys`] with its type checked against the
//! jemalloc manual, and reading it is then safe.

use core::marker::PhantomData;

use tikv_jemalloc_ctl::raw;

use super::Unavailable;

/// A mallctl name together with the C type of its value.
pub(crate) struct Key<T> {
    /// NUL-terminated.
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T: Copy> Key<T> {
    /// Declares a key.
    ///
    /// # Safety
    ///
    /// `T` must have the size and valid bit patterns of the C type jemalloc
    /// documents for `name` (size_t = `usize`, ssize_t = `isize`,
    /// unsigned = `u32`, uint32_t = `u32`, uint64_t = `u64`, bool = `bool`).
    /// `name` must end in a NUL byte (checked at compile time for consts).
    pub(crate) const unsafe fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(bytes.len() > 1 && bytes[bytes.len() - 1] == 0);
        Key {
            name,
            _type: PhantomData,
        }
    }

    /// The name without its NUL, for messages.
    pub(crate) fn name(&self) -> &'static str {
        self.name.trim_end_matches('\0')
    }

    /// Reads the value by name (one name lookup per call).
    pub(crate) fn read(&self) -> Result<T, Unavailable> {
        // SAFETY: `Key::new`'s contract: `T` is the documented C type of
        // `name` and `name` is NUL-terminated, so jemalloc writes exactly
        // `size_of::<T>()` bytes forming a valid `T`.
        unsafe { raw::read::<T>(self.name.as_bytes()) }
            .map_err(|e| Unavailable::mallctl(self.name(), e))
    }

    /// Resolves the name to a MIB once, for reading it in a loop with one
    /// index component replaced (`arenas.bin.<j>.size`).
    ///
    /// `N` must be the number of dot-separated components of the name.
    pub(crate) fn mib<const N: usize>(&'static self) -> Result<KeyMib<T, N>, Unavailable> {
        let components = self.name().split('.').count();
        if components != N {
            // raw::name_to_mib would panic on the mismatch; refuse instead.
            return Err(Unavailable::Mallctl {
                name: self.name(),
                error: format!("MIB of {N} components asked, name has {components}"),
            });
        }
        let mut mib = [0usize; N];
        raw::name_to_mib(self.name.as_bytes(), &mut mib)
            .map_err(|e| Unavailable::mallctl(self.name(), e))?;
        Ok(KeyMib { key: self, mib })
    }
}

/// A resolved MIB of a [`Key`].
pub(crate) struct KeyMib<T: 'static, const N: usize> {
    key: &'static Key<T>,
    mib: [usize; N],
}

impl<T: Copy, const N: usize> KeyMib<T, N> {
    /// Reads the value with MIB component `position` set to `index`.
    pub(crate) fn read_at(&mut self, position: usize, index: usize) -> Result<T, Unavailable> {
        if let Some(slot) = self.mib.get_mut(position) {
            *slot = index;
        }
        // SAFETY: the MIB was resolved from the key's name; replacing an
        // index component does not change the value's type, so `Key::new`'s
        // contract (T is the documented C type) still holds.
        unsafe { raw::read_mib::<T>(&self.mib) }
            .map_err(|e| Unavailable::mallctl(self.key.name(), e))
    }
}

/// Advances jemalloc's epoch, refreshing its cached statistics; returns the
/// new epoch.
pub(crate) fn advance_epoch() -> Result<u64, Unavailable> {
    tikv_jemalloc_ctl::epoch::advance().map_err(|e| Unavailable::mallctl("epoch", e))
}
