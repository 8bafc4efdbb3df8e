//! Bounds-checked access to the guest's linear memory. Every guest pointer
//! goes through here; a bad one is EFAULT for the guest, never a host crash.

use crate::errno::{Errno, FAULT};

/// The guest's memory for the duration of one host call.
pub struct GuestMemory<'a>(pub &'a mut [u8]);

impl GuestMemory<'_> {
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(FAULT)?;
        self.0.get(start..end).ok_or(FAULT)
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(FAULT)?;
        self.0.get_mut(start..end).ok_or(FAULT)
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let bytes = self.slice(ptr, N as u32)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn read_u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.array::<1>(ptr)?[0])
    }

    pub fn read_u16(&self, ptr: u32) -> Result<u16, Errno> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    pub fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        self.slice_mut(ptr, bytes.len() as u32)?
            .copy_from_slice(bytes);
        Ok(())
    }

    pub fn write_u8(&mut self, ptr: u32, v: u8) -> Result<(), Errno> {
        self.write(ptr, &[v])
    }

    pub fn write_u16(&mut self, ptr: u32, v: u16) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn write_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// The `(buf, len)` pairs of an iovec array, checked against memory.
    pub fn iovecs(
        &self,
        ptr: u32,
        count: u32,
    ) -> Result<impl Iterator<Item = (u32, u32)> + '_, Errno> {
        let table = self.slice(ptr, count.checked_mul(8).ok_or(FAULT)?)?;
        for pair in table.chunks_exact(8) {
            let (buf, len) = split_pair(pair);
            self.slice(buf, len)?;
        }
        Ok(table.chunks_exact(8).map(split_pair))
    }
}

fn split_pair(pair: &[u8]) -> (u32, u32) {
    let mut a = [0u8; 4];
    let mut b = [0u8; 4];
    a.copy_from_slice(&pair[..4]);
    b.copy_from_slice(&pair[4..8]);
    (u32::from_le_bytes(a), u32::from_le_bytes(b))
}
