//! WasmEdge's address records and their conversion to host `sockaddr`s.
//!
//! An address argument points at `{ buf: u32, buf_len: u32 }`. `buf_len` 4 or
//! 16 means raw IPv4 or IPv6 bytes in network order ("V1"); 128 means a storage
//! record: family (u16, 1 = IPv4, 2 = IPv6) followed by the address bytes ("V2").

use crate::errno::{self, Errno, WasiResult, INVAL};
use crate::memory::GuestMemory;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

pub enum AddressFormat {
    Raw,
    Storage,
}

fn buffer(mem: &GuestMemory<'_>, address: u32) -> Result<(u32, u32), Errno> {
    Ok((mem.read_u32(address)?, mem.read_u32(address + 4)?))
}

pub fn format_of(mem: &GuestMemory<'_>, address: u32) -> Result<AddressFormat, Errno> {
    match buffer(mem, address)?.1 {
        4 | 16 => Ok(AddressFormat::Raw),
        128 => Ok(AddressFormat::Storage),
        _ => Err(INVAL),
    }
}

pub fn read_address(mem: &GuestMemory<'_>, address: u32) -> Result<IpAddr, Errno> {
    let (buf, len) = buffer(mem, address)?;
    let bytes = mem.slice(buf, len)?;
    let v4 = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
    let v6 = |b: &[u8]| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&b[..16]);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    match len {
        4 => Ok(v4(bytes)),
        16 => Ok(v6(bytes)),
        128 => match u16::from_le_bytes([bytes[0], bytes[1]]) {
            1 => Ok(v4(&bytes[2..])),
            2 => Ok(v6(&bytes[2..])),
            _ => Err(Errno(5)),
        },
        _ => Err(INVAL),
    }
}

pub fn to_sockaddr(ip: IpAddr, port: u16) -> (libc::sockaddr_storage, u32) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(ip) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = port.to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(ip) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = port.to_be();
            sin6.sin6_addr.s6_addr = ip.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as u32)
}

pub fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be(sin6.sin6_port),
            ))
        }
        _ => None,
    }
}

/// Writes raw address bytes into a 4- or 16-byte buffer; returns the WASI
/// family (1 or 2). An IPv6 address does not fit a 4-byte buffer: EINVAL.
pub fn write_address_v1(
    mem: &mut GuestMemory<'_>,
    address: u32,
    storage: &libc::sockaddr_storage,
    port: Option<u32>,
) -> Result<u8, Errno> {
    let (buf, len) = buffer(mem, address)?;
    let addr = from_sockaddr(storage).ok_or(Errno(5))?;
    let family = match addr.ip() {
        IpAddr::V4(ip) if len >= 4 => {
            mem.write(buf, &ip.octets())?;
            1
        }
        IpAddr::V6(ip) if len >= 16 => {
            mem.write(buf, &ip.octets())?;
            2
        }
        _ => return Err(INVAL),
    };
    if let Some(port) = port {
        mem.write_u32(port, addr.port() as u32)?;
    }
    Ok(family)
}

/// Writes a 128-byte storage record (family, then address bytes).
pub fn write_address_v2(
    mem: &mut GuestMemory<'_>,
    address: u32,
    storage: &libc::sockaddr_storage,
    port: u32,
) -> WasiResult {
    let (buf, len) = buffer(mem, address)?;
    if len != 128 {
        return Err(INVAL);
    }
    let addr = from_sockaddr(storage).ok_or(Errno(5))?;
    match addr.ip() {
        IpAddr::V4(ip) => {
            mem.write_u16(buf, 1)?;
            mem.write(buf + 2, &ip.octets())?;
        }
        IpAddr::V6(ip) => {
            mem.write_u16(buf, 2)?;
            mem.write(buf + 2, &ip.octets())?;
        }
    }
    mem.write_u32(port, addr.port() as u32)
}

fn guest_str(mem: &GuestMemory<'_>, ptr: u32, len: u32) -> Result<String, Errno> {
    let bytes = mem.slice(ptr, len)?;
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(b"");
    String::from_utf8(bytes.to_vec()).map_err(|_| INVAL)
}

/// `sock_getaddrinfo`: fills the guest's pre-linked `WasiAddrinfo` chain.
///
/// Guest layouts (`wasmedge_wasi_socket`, `#[repr(C, packed(4))]`):
/// addrinfo = flags u16 @0, family u8 @2, socktype u8 @3, protocol u8 @4,
/// addrlen u32 @8, addr ptr @12, canonname ptr @16, canonnamelen u32 @20,
/// next ptr @24; sockaddr = family u8 @0, sa_data_len u32 @4, sa_data ptr @8,
/// where sa_data holds the port (big-endian) then the address, as in
/// `sockaddr_in`/`sockaddr_in6` without their family field.
#[allow(clippy::too_many_arguments)]
pub fn getaddrinfo(
    mem: &mut GuestMemory<'_>,
    node: u32,
    node_len: u32,
    service: u32,
    service_len: u32,
    hints: u32,
    res: u32,
    max: u32,
    out_len: u32,
) -> WasiResult {
    let node = guest_str(mem, node, node_len)?;
    let service = guest_str(mem, service, service_len)?;
    let want_family = mem.read_u8(hints + 2)?;
    let socktype = mem.read_u8(hints + 3)?;
    let port: u16 = match service.as_str() {
        "" => 0,
        "http" => 80,
        "https" => 443,
        s => s.parse().map_err(|_| INVAL)?,
    };
    let found = (node.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| match e.raw_os_error() {
            Some(code) => errno::from_linux(code),
            None => Errno(44), // NOENT: name not known
        })?;
    let mut ai = mem.read_u32(res)?;
    let mut written = 0;
    for addr in found {
        let family = if addr.is_ipv4() { 1u8 } else { 2u8 };
        if (want_family == 1 || want_family == 2) && family != want_family {
            continue;
        }
        if written == max || ai == 0 {
            break;
        }
        let sockaddr = mem.read_u32(ai + 12)?;
        let data_len = mem.read_u32(sockaddr + 4)?;
        let data_ptr = mem.read_u32(sockaddr + 8)?;
        let mut data = [0u8; 22];
        data[..2].copy_from_slice(&addr.port().to_be_bytes());
        let needed = match addr.ip() {
            IpAddr::V4(ip) => {
                data[2..6].copy_from_slice(&ip.octets());
                6
            }
            IpAddr::V6(ip) => {
                data[6..22].copy_from_slice(&ip.octets());
                22
            }
        };
        if (data_len as usize) < needed {
            continue;
        }
        mem.write_u8(ai + 2, family)?;
        mem.write_u8(ai + 3, if socktype == 0 { 2 } else { socktype })?;
        mem.write_u8(ai + 4, 1)?;
        mem.write_u32(ai + 8, needed as u32 + 2)?;
        mem.write_u8(sockaddr, family)?;
        mem.write(data_ptr, &data[..needed])?;
        written += 1;
        ai = mem.read_u32(ai + 24)?;
    }
    mem.write_u32(out_len, written)
}
