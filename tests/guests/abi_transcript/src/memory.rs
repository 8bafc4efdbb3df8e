//! Guest memory as the cases hand it to the runtime: buffers, address
//! records, iovec arrays and poll records at known addresses, and pointers
//! just past the end of memory.

/// The first address past the end of linear memory (it may grow, so ask
/// right before a call).
pub fn end() -> u32 {
    (core::arch::wasm32::memory_size(0) * 65536) as u32
}

/// A pointer whose `len` bytes straddle the end of memory by one byte.
pub fn straddling(len: u32) -> u32 {
    end() - len + 1
}

/// Reads `N` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr+N` must lie inside linear memory.
pub unsafe fn read<const N: usize>(ptr: u32) -> [u8; N] {
    let mut out = [0u8; N];
    core::ptr::copy_nonoverlapping(ptr as usize as *const u8, out.as_mut_ptr(), N);
    out
}

pub fn read_u16(ptr: u32) -> u16 {
    // SAFETY: callers pass pointers into buffers they own.
    u16::from_le_bytes(unsafe { read(ptr) })
}

pub fn read_u32(ptr: u32) -> u32 {
    // SAFETY: as above.
    u32::from_le_bytes(unsafe { read(ptr) })
}

pub fn read_u64(ptr: u32) -> u64 {
    // SAFETY: as above.
    u64::from_le_bytes(unsafe { read(ptr) })
}

/// Writes a `u32` at `ptr`, which must lie in a buffer the caller owns.
pub fn write_u32(ptr: u32, value: u32) {
    // SAFETY: as above.
    unsafe {
        core::ptr::copy_nonoverlapping(value.to_le_bytes().as_ptr(), ptr as usize as *mut u8, 4)
    }
}

/// An owned, zeroed buffer with a fixed address for as long as it lives.
/// Held as a raw pointer, not a `Vec`: the runtime writes through the
/// address `ptr` gives while the buffer is only borrowed shared, which a
/// pointer taken from a shared borrow does not allow.
pub struct Buf {
    ptr: *mut u8,
    len: usize,
}

impl Buf {
    pub fn zeroed(len: usize) -> Buf {
        Buf::from(&vec![0; len])
    }

    pub fn from(bytes: &[u8]) -> Buf {
        let len = bytes.len();
        let ptr = Box::into_raw(bytes.to_vec().into_boxed_slice()) as *mut u8;
        Buf { ptr, len }
    }

    pub fn ptr(&self) -> u32 {
        self.ptr as usize as u32
    }

    pub fn at(&self, offset: usize) -> u32 {
        self.ptr() + offset as u32
    }

    /// What the buffer holds now (not to be kept across a call that
    /// writes it).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` holds `len` initialized bytes for as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, borrowed uniquely through `self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn u32_at(&self, offset: usize) -> u32 {
        read_u32(self.at(offset))
    }

    pub fn set_u32(&mut self, offset: usize, value: u32) {
        self.bytes_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    pub fn set_u16(&mut self, offset: usize, value: u16) {
        self.bytes_mut()[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
    }

    pub fn set_u64(&mut self, offset: usize, value: u64) {
        self.bytes_mut()[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let slice = core::ptr::slice_from_raw_parts_mut(self.ptr, self.len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of `len` bytes in
        // `from`, and dropped once.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// WasmEdge's address argument: a `{ buf, buf_len }` record and its bytes.
pub struct Address {
    record: Buf,
    bytes: Buf,
}

impl Address {
    /// Raw address bytes (4: IPv4, 16: IPv6, anything else: hostile).
    pub fn raw(bytes: &[u8]) -> Address {
        let bytes = Buf::from(bytes);
        let mut record = Buf::zeroed(8);
        record.set_u32(0, bytes.ptr());
        record.set_u32(4, bytes.bytes().len() as u32);
        Address { record, bytes }
    }

    pub fn v4(ip: [u8; 4]) -> Address {
        Address::raw(&ip)
    }

    pub fn v6_loopback() -> Address {
        let mut ip = [0u8; 16];
        ip[15] = 1;
        Address::raw(&ip)
    }

    /// The 128-byte storage form: family (u16) then the address bytes.
    pub fn storage(family: u16, ip: &[u8]) -> Address {
        let mut bytes = [0u8; 128];
        bytes[..2].copy_from_slice(&family.to_le_bytes());
        bytes[2..2 + ip.len()].copy_from_slice(ip);
        Address::raw(&bytes)
    }

    /// A zeroed buffer of `len` bytes for the runtime to fill.
    pub fn out(len: usize) -> Address {
        Address::raw(&vec![0u8; len])
    }

    /// The same bytes, but the record claims `len` and points at `buf`.
    pub fn lying(mut self, buf: u32, len: u32) -> Address {
        self.record.set_u32(0, buf);
        self.record.set_u32(4, len);
        self
    }

    pub fn ptr(&self) -> u32 {
        self.record.ptr()
    }

    pub fn buf_ptr(&self) -> u32 {
        self.bytes.ptr()
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// The address bytes the runtime wrote, as text: IPv4 for 4 bytes, IPv6
    /// for 16, the family and address of a storage record for 128.
    pub fn shown(&self) -> String {
        let b = self.bytes();
        match b.len() {
            4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
            16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                std::net::Ipv6Addr::from(o).to_string()
            }
            128 => {
                let family = u16::from_le_bytes([b[0], b[1]]);
                let v4 = std::net::Ipv4Addr::new(b[2], b[3], b[4], b[5]);
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[2..18]);
                let v6 = std::net::Ipv6Addr::from(o);
                let rest_zero = b[18..].iter().all(|&x| x == 0);
                format!("family={family} v4={v4} v6={v6} tail_zero={rest_zero}")
            }
            _ => format!("{b:?}"),
        }
    }
}

/// An iovec array and the buffers it points at.
pub struct Iovecs {
    table: Buf,
    bufs: Vec<Buf>,
}

impl Iovecs {
    /// One iovec per slice, each pointing at a copy of it.
    pub fn of(parts: &[&[u8]]) -> Iovecs {
        let bufs: Vec<Buf> = parts.iter().map(|p| Buf::from(p)).collect();
        let mut table = Buf::zeroed(8 * parts.len().max(1));
        for (i, b) in bufs.iter().enumerate() {
            table.set_u32(8 * i, b.ptr());
            table.set_u32(8 * i + 4, b.bytes().len() as u32);
        }
        Iovecs { table, bufs }
    }

    /// Zeroed receive buffers of the given sizes.
    pub fn zeroed(sizes: &[usize]) -> Iovecs {
        let parts: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0u8; n]).collect();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Iovecs::of(&slices)
    }

    /// Points entry `i` somewhere else, with another length.
    pub fn point(&mut self, i: usize, buf: u32, len: u32) {
        self.table.set_u32(8 * i, buf);
        self.table.set_u32(8 * i + 4, len);
    }

    pub fn ptr(&self) -> u32 {
        self.table.ptr()
    }

    pub fn len(&self) -> u32 {
        self.bufs.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    pub fn buf(&self, i: usize) -> &Buf {
        &self.bufs[i]
    }

    /// The first `n` bytes received, across the buffers, as text (long
    /// data as its start, its length and a checksum).
    pub fn received(&self, n: usize) -> String {
        let all: Vec<u8> = self.bufs.iter().flat_map(|b| b.bytes().to_vec()).collect();
        let data = &all[..n.min(all.len())];
        if data.len() <= 48 {
            return format!("{:?}", String::from_utf8_lossy(data));
        }
        let fnv = data.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!(
            "{:?}... ({} bytes, fnv1a {fnv:08x})",
            String::from_utf8_lossy(&data[..48]),
            data.len()
        )
    }
}

/// `poll_oneoff` input: 48-byte subscriptions.
#[derive(Default)]
pub struct Subscriptions {
    records: Vec<[u8; 48]>,
}

pub const CLOCK_REALTIME: u32 = 0;
pub const CLOCK_MONOTONIC: u32 = 1;

impl Subscriptions {
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    pub fn clock(mut self, userdata: u64, clock: u32, nanos: u64, flags: u16) -> Self {
        let mut r = [0u8; 48];
        r[..8].copy_from_slice(&userdata.to_le_bytes());
        r[8] = 0;
        r[16..20].copy_from_slice(&clock.to_le_bytes());
        r[24..32].copy_from_slice(&nanos.to_le_bytes());
        r[40..42].copy_from_slice(&flags.to_le_bytes());
        self.records.push(r);
        self
    }

    /// A relative monotonic clock of `millis`.
    pub fn timeout(self, userdata: u64, millis: u64) -> Self {
        self.clock(userdata, CLOCK_MONOTONIC, millis * 1_000_000, 0)
    }

    fn fd_record(mut self, userdata: u64, tag: u8, fd: u32) -> Self {
        let mut r = [0u8; 48];
        r[..8].copy_from_slice(&userdata.to_le_bytes());
        r[8] = tag;
        r[16..20].copy_from_slice(&fd.to_le_bytes());
        self.records.push(r);
        self
    }

    pub fn read(self, userdata: u64, fd: u32) -> Self {
        self.fd_record(userdata, 1, fd)
    }

    pub fn write(self, userdata: u64, fd: u32) -> Self {
        self.fd_record(userdata, 2, fd)
    }

    /// A record with any tag (3 and up are not event types).
    pub fn tagged(self, userdata: u64, tag: u8, fd: u32) -> Self {
        self.fd_record(userdata, tag, fd)
    }

    pub fn len(&self) -> u32 {
        self.records.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn to_buf(&self) -> Buf {
        let flat: Vec<u8> = self.records.iter().flat_map(|r| r.to_vec()).collect();
        Buf::from(&flat)
    }
}
