//! Bounds-checked access to the guest's linear memory, with WasmEdge's rules:
//! a pointer to `N` bytes is valid when all `N` lie inside memory (address 0
//! included), and a span of zero bytes is valid anywhere. Every guest pointer
//! goes through here; a bad one is EFAULT for the guest, never a host crash.
//! Iovec arrays are gathered here too, into host iovecs that point straight
//! into guest memory.

use crate::errno::{Errno, FAULT, INVAL};
use std::mem::MaybeUninit;

/// Most iovecs one call takes (WasmEdge's `kIOVMax`, Linux's `UIO_MAXIOV`).
pub const MAX_IOVECS: usize = 1024;

/// The guest's memory for the duration of one host call.
pub struct GuestMemory<'a>(pub &'a mut [u8]);

impl GuestMemory<'_> {
    fn fits(&self, ptr: u32, len: u64) -> bool {
        u64::from(ptr) + len <= self.0.len() as u64
    }

    /// Checks that `N` bytes at `ptr` are inside memory (an out-pointer).
    pub fn pointer<const N: usize>(&self, ptr: u32) -> Result<(), Errno> {
        if self.fits(ptr, N as u64) {
            Ok(())
        } else {
            Err(FAULT)
        }
    }

    /// `len` bytes at `ptr`; empty, wherever it points, when `len` is 0.
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        if len == 0 {
            return Ok(&[]);
        }
        if !self.fits(ptr, u64::from(len)) {
            return Err(FAULT);
        }
        Ok(&self.0[ptr as usize..ptr as usize + len as usize])
    }

    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        if len == 0 {
            return Ok(&mut []);
        }
        if !self.fits(ptr, u64::from(len)) {
            return Err(FAULT);
        }
        Ok(&mut self.0[ptr as usize..ptr as usize + len as usize])
    }

    fn array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        self.pointer::<N>(ptr)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[ptr as usize..ptr as usize + N]);
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

    /// An iovec array of `count` entries at `ptr`, checked as WasmEdge checks
    /// it before anything else of the call: too many is EINVAL, a table
    /// outside memory EFAULT. Gather the buffers with [`Self::gather`] once
    /// the call's other pointers have been checked.
    pub fn iovec_table(&self, ptr: u32, count: u32) -> Result<IovecTable, Errno> {
        if count as usize > MAX_IOVECS {
            return Err(INVAL);
        }
        self.slice(ptr, count * 8)?;
        Ok(IovecTable { ptr, count })
    }

    /// The guest buffers of `table`, all checked before any is used (EFAULT
    /// when one lies outside memory, and then none is taken), their lengths
    /// capped so that the sum stays below 2^32, as WasmEdge caps them. No
    /// byte is copied: however many iovecs name the same large buffer, the
    /// host holds only the list.
    pub fn iovec_slices(&self, table: IovecTable) -> Result<Vec<&[u8]>, Errno> {
        let mut slices = Vec::with_capacity(table.count as usize);
        let mut total: u32 = 0;
        for i in 0..table.count {
            let entry = table.ptr + 8 * i;
            let buf = self.read_u32(entry)?;
            let len = self.read_u32(entry + 4)?.min(u32::MAX - total);
            slices.push(self.slice(buf, len)?);
            total += len;
        }
        Ok(slices)
    }

    /// Host iovecs for every buffer of `table`, pointing into guest memory;
    /// EFAULT when one lies outside it. Lengths are capped so their sum
    /// stays below 2^32, as WasmEdge caps them.
    pub fn gather(&mut self, table: IovecTable, out: &mut IovecBuffer) -> Result<usize, Errno> {
        // Every buffer's pointer comes from one pointer to the whole memory:
        // a mutable borrow of the memory per buffer would, to the aliasing
        // model, end the pointers taken before it.
        let memory = self.0.as_mut_ptr();
        let mut total: u32 = 0;
        for i in 0..table.count {
            let entry = table.ptr + 8 * i;
            let buf = self.read_u32(entry)?;
            let len = self.read_u32(entry + 4)?.min(u32::MAX - total);
            total += len;
            // An empty buffer may point anywhere (the kernel reads none of it).
            let at = match len {
                0 => 0,
                _ if self.fits(buf, u64::from(len)) => buf as usize,
                _ => return Err(FAULT),
            };
            out[i as usize].write(libc::iovec {
                iov_base: memory.wrapping_add(at).cast(),
                iov_len: len as usize,
            });
        }
        Ok(table.count as usize)
    }
}

/// An iovec array whose table [`GuestMemory::iovec_table`] checked.
#[derive(Clone, Copy)]
pub struct IovecTable {
    ptr: u32,
    count: u32,
}

/// Room for the host iovecs of one call; [`GuestMemory::gather`] fills the
/// first entries, and only those reach the kernel.
pub type IovecBuffer = [MaybeUninit<libc::iovec>; MAX_IOVECS];

/// An [`IovecBuffer`] left uninitialized: zeroing its 16 KiB on every send
/// and receive cost more than the system call's own copy of a small message.
pub fn iovec_buffer() -> IovecBuffer {
    [const { MaybeUninit::uninit() }; MAX_IOVECS]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovecs_are_taken_whole_or_not_at_all() {
        let mut bytes = vec![0u8; 256];
        bytes[100..105].copy_from_slice(b"hello");
        // Two iovecs at 0: the first valid, the second out of memory.
        bytes[0..4].copy_from_slice(&100u32.to_le_bytes());
        bytes[4..8].copy_from_slice(&5u32.to_le_bytes());
        bytes[8..12].copy_from_slice(&250u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&50u32.to_le_bytes());
        let mem = GuestMemory(&mut bytes);
        let table = IovecTable { ptr: 0, count: 2 };
        assert!(mem.iovec_slices(table).is_err());
        let table = IovecTable { ptr: 0, count: 1 };
        assert_eq!(mem.iovec_slices(table), Ok(vec![&b"hello"[..]]));
    }
}
