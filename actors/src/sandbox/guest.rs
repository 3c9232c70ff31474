//! Bounds-checked access to the guest's linear memory. Every pointer and length the WASI
//! functions receive comes from the guest, so all offset arithmetic is checked here and a bad
//! address is an `OutOfBounds` (EFAULT to the guest), never a panic.
//!
//! Preview-1 pointers are 32-bit, so the host functions see the first 4 GiB of memory only,
//! also in a memory64 module whose memory is larger: a range that crosses 4 GiB is out of
//! bounds, whether it is a buffer or an array of structures addressed with [`element`].

use std::ops::Range;

/// The bytes a 32-bit pointer can address: 4 GiB.
pub(super) const ADDRESS_SPACE: u64 = 1 << 32;

/// A guest address or length that does not lie inside linear memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutOfBounds;

/// `base + index × size`: the address of element `index` of a guest array.
pub(super) fn element(base: u32, index: u32, size: u32) -> Result<u32, OutOfBounds> {
    index
        .checked_mul(size)
        .and_then(|offset| base.checked_add(offset))
        .ok_or(OutOfBounds)
}

/// `base + offset`: a field inside a guest structure.
pub(super) fn field(base: u32, offset: u32) -> Result<u32, OutOfBounds> {
    base.checked_add(offset).ok_or(OutOfBounds)
}

/// The guest's linear memory, borrowed for the duration of one host call.
pub(super) struct Guest<'a> {
    bytes: &'a mut [u8],
}

impl<'a> Guest<'a> {
    pub(super) fn new(bytes: &'a mut [u8]) -> Self {
        let end = usize::try_from(ADDRESS_SPACE)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Self {
            bytes: bytes.get_mut(..end).unwrap_or_default(),
        }
    }

    /// Checks that `len` bytes from `ptr` on lie inside memory, before anything is paid for
    /// or done; the accessors check again, so this cannot let a bad access through.
    pub(super) fn check(&self, ptr: u32, len: u64) -> Result<(), OutOfBounds> {
        self.range(ptr, usize::try_from(len).map_err(|_| OutOfBounds)?)
            .map(drop)
    }

    fn range(&self, ptr: u32, len: usize) -> Result<Range<usize>, OutOfBounds> {
        let start = usize::try_from(ptr).map_err(|_| OutOfBounds)?;
        let end = start.checked_add(len).ok_or(OutOfBounds)?;
        if end > self.bytes.len() {
            return Err(OutOfBounds);
        }
        Ok(start..end)
    }

    pub(super) fn bytes(&self, ptr: u32, len: u32) -> Result<&[u8], OutOfBounds> {
        let range = self.range(ptr, usize::try_from(len).map_err(|_| OutOfBounds)?)?;
        self.bytes.get(range).ok_or(OutOfBounds)
    }

    pub(super) fn bytes_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], OutOfBounds> {
        let range = self.range(ptr, usize::try_from(len).map_err(|_| OutOfBounds)?)?;
        self.bytes.get_mut(range).ok_or(OutOfBounds)
    }

    fn read<const N: usize>(&self, ptr: u32) -> Result<[u8; N], OutOfBounds> {
        let range = self.range(ptr, N)?;
        let mut out = [0; N];
        out.copy_from_slice(self.bytes.get(range).ok_or(OutOfBounds)?);
        Ok(out)
    }

    pub(super) fn read_u8(&self, ptr: u32) -> Result<u8, OutOfBounds> {
        self.read::<1>(ptr).map(|[byte]| byte)
    }

    pub(super) fn read_u16(&self, ptr: u32) -> Result<u16, OutOfBounds> {
        self.read(ptr).map(u16::from_le_bytes)
    }

    pub(super) fn read_u32(&self, ptr: u32) -> Result<u32, OutOfBounds> {
        self.read(ptr).map(u32::from_le_bytes)
    }

    pub(super) fn read_u64(&self, ptr: u32) -> Result<u64, OutOfBounds> {
        self.read(ptr).map(u64::from_le_bytes)
    }

    pub(super) fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), OutOfBounds> {
        let range = self.range(ptr, data.len())?;
        self.bytes
            .get_mut(range)
            .ok_or(OutOfBounds)?
            .copy_from_slice(data);
        Ok(())
    }

    pub(super) fn write_u32(&mut self, ptr: u32, value: u32) -> Result<(), OutOfBounds> {
        self.write(ptr, &value.to_le_bytes())
    }

    pub(super) fn write_u64(&mut self, ptr: u32, value: u64) -> Result<(), OutOfBounds> {
        self.write(ptr, &value.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_stay_inside_memory() {
        let mut memory = [0u8; 16];
        let mut guest = Guest::new(&mut memory);
        guest.write_u64(8, u64::MAX).unwrap();
        assert_eq!(guest.read_u64(8), Ok(u64::MAX));
        assert_eq!(guest.write_u32(13, 1), Err(OutOfBounds));
        assert_eq!(guest.read_u32(u32::MAX), Err(OutOfBounds));
        assert_eq!(guest.bytes(16, 0).map(<[u8]>::len), Ok(0));
        assert_eq!(guest.bytes(17, 0).err(), Some(OutOfBounds));
        assert_eq!(guest.bytes_mut(1, u32::MAX).err(), Some(OutOfBounds));
        assert_eq!(element(u32::MAX - 3, 1, 4), Err(OutOfBounds));
        assert_eq!(element(8, 2, 4), Ok(16));
        assert_eq!(field(u32::MAX, 1), Err(OutOfBounds));
        assert_eq!(guest.check(0, 16), Ok(()));
        assert_eq!(guest.check(16, 0), Ok(()));
        assert_eq!(guest.check(8, 9), Err(OutOfBounds));
        assert_eq!(guest.check(0, u64::MAX), Err(OutOfBounds));
    }
}
