//! `sock_getaddrinfo`: the C library's lookup, written into the chain of
//! result records the guest laid out (`WasiAddrinfo`, `WasiSockaddr` in
//! `wasmedge_wasi_socket`):
//!
//! - addrinfo (28 bytes): flags u16 @0, family u8 @2, socktype u8 @3,
//!   protocol u8 @4, addrlen u32 @8, addr ptr @12, canonname ptr @16,
//!   canonname_len u32 @20, next ptr @24;
//! - sockaddr (12 bytes): family u8 @0, sa_data_len u32 @4, sa_data ptr @8,
//!   where sa_data gets the host `sockaddr` after its family field.

use crate::errno::{
    from_eai, Errno, Trap, WasiResult, AI_BADFLAG, AI_FAMILY, AI_MEMORY, AI_NONAME, FAULT, NOSYS,
};
use crate::memory::GuestMemory;
use std::ffi::CString;

const AI_CANONNAME: u16 = 2;
const AI_NUMERICSERV: u16 = 8;

/// The longest name passed to the C library: none longer can be found (a
/// DNS name is at most 253 bytes, and the C library's longest host name,
/// `NI_MAXHOST`, 1025), so a longer one is answered as an unknown name
/// without copying it whole (a guest could hand over all its memory, to
/// be copied into the host's); but a longer service that is a port
/// number is read as one ([`service_name`]).
const NAME_MOST: usize = 4096;

/// The lookup's arguments, as guest pointers and lengths.
pub struct Lookup {
    pub node: u32,
    pub node_len: u32,
    pub service: u32,
    pub service_len: u32,
    pub hints: u32,
    pub res: u32,
    pub max: u32,
    pub res_len: u32,
}

/// `Ok(errno result)`, or `Err(Trap)` where WasmEdge's host function itself
/// fails (a result chain or buffer outside memory: its
/// `WasiSockGetAddrinfo::body` returns those as function errors).
pub fn getaddrinfo(mem: &mut GuestMemory<'_>, args: &Lookup) -> Result<WasiResult, Trap> {
    let checked = match check(mem, args) {
        Ok(checked) => checked,
        Err(errno) => return Ok(Err(errno)),
    };
    let (node, service, hints) = checked;
    let records = chain(mem, args)?;
    Ok(lookup(mem, args, &node, &service, &hints, &records))
}

struct Hints {
    flags: u16,
    family: u8,
    socktype: u8,
    protocol: u8,
    addrlen: u32,
}

/// A looked-up name as getaddrinfo takes it: NULL when empty.
type Name = Option<CString>;

/// The names (each copied once, up to its first NUL or past
/// [`NAME_MOST`]: a guest's length is not host memory to fill) and hints,
/// as WasmEdge checks them.
fn check(mem: &GuestMemory<'_>, a: &Lookup) -> Result<(Name, Name, Hints), Errno> {
    let node = c_name(mem.slice(a.node, a.node_len)?);
    let service = service_name(mem.slice(a.service, a.service_len)?);
    mem.pointer::<28>(a.hints)?;
    mem.pointer::<4>(a.res)?;
    mem.pointer::<4>(a.res_len)?;
    if node.is_none() && service.is_none() {
        return Err(AI_NONAME);
    }
    if a.max < 1 {
        return Err(AI_MEMORY);
    }
    let hints = Hints {
        flags: mem.read_u16(a.hints)?,
        family: mem.read_u8(a.hints + 2)?,
        socktype: mem.read_u8(a.hints + 3)?,
        protocol: mem.read_u8(a.hints + 4)?,
        addrlen: mem.read_u32(a.hints + 8)?,
    };
    if hints.flags & !0x7f != 0 || (hints.flags & AI_CANONNAME != 0 && node.is_none()) {
        return Err(AI_BADFLAG);
    }
    if hints.family > 2 {
        return Err(AI_FAMILY);
    }
    if hints.protocol > 2 || hints.socktype > 2 {
        return Err(NOSYS);
    }
    Ok((node, service, hints))
}

/// The guest's result records: `max` of them (at most [`KEPT_RECORDS`]),
/// each with its sockaddr.
struct Record {
    at: u32,
    sockaddr: u32,
    sa_data: u32,
    canonname: u32,
}

/// The most result records kept: more than any lookup returns (a DNS
/// answer of 64 KiB holds some 4000 addresses; each is up to three
/// records, one per socket type, but a guest asks for one). The guest's
/// `max` (up to 2^32) must not set how much the host allocates.
const KEPT_RECORDS: u32 = 4096;

fn chain(mem: &GuestMemory<'_>, a: &Lookup) -> Result<Vec<Record>, Trap> {
    let trap = |_| Trap(FAULT);
    let mut records = Vec::new();
    let mut at = mem.read_u32(a.res).map_err(trap)?;
    let kept = a.max.min(KEPT_RECORDS);
    for _ in 0..kept {
        let record = record_at(mem, at)?;
        at = record.next;
        records.push(record.parts);
    }
    // The rest of the `max` records is checked as WasmEdge checks every
    // one (any part outside memory fails the call), without keeping it; a
    // chain that comes back on itself is checked once round (Brent's cycle
    // finding), so the work is bounded by the guest's memory, not `max`.
    let (mut tortoise, mut power, mut steps) = (at, 1u64, 0u64);
    for _ in kept..a.max {
        at = record_at(mem, at)?.next;
        if at == tortoise {
            break;
        }
        steps += 1;
        if steps == power {
            (tortoise, power, steps) = (at, power * 2, 0);
        }
    }
    Ok(records)
}

/// A result record at `at` and the next one's address, each of its parts
/// checked to be in memory as WasmEdge checks them: the 28-byte record,
/// its 12-byte address record, the address bytes and the canonical name's.
struct Checked {
    parts: Record,
    next: u32,
}

fn record_at(mem: &GuestMemory<'_>, at: u32) -> Result<Checked, Trap> {
    let trap = |_| Trap(FAULT);
    mem.pointer::<28>(at).map_err(trap)?;
    let sockaddr = mem.read_u32(at + 12).map_err(trap)?;
    // WasmEdge ignores a bad address pointer here and dereferences it
    // later; failing as a function is the nearest safe behaviour.
    mem.pointer::<12>(sockaddr).map_err(trap)?;
    let (len, sa_data) = (
        mem.read_u32(sockaddr + 4).map_err(trap)?,
        mem.read_u32(sockaddr + 8).map_err(trap)?,
    );
    mem.slice(sa_data, len).map_err(trap)?;
    let (canonname, len) = (
        mem.read_u32(at + 16).map_err(trap)?,
        mem.read_u32(at + 20).map_err(trap)?,
    );
    mem.slice(canonname, len).map_err(trap)?;
    let next = mem.read_u32(at + 24).map_err(trap)?;
    Ok(Checked {
        parts: Record {
            at,
            sockaddr,
            sa_data,
            canonname,
        },
        next,
    })
}

/// The bytes of a node or service name up to its first NUL, or one byte
/// past [`NAME_MOST`] of a longer one; NULL when empty.
fn c_name(bytes: &[u8]) -> Option<CString> {
    if bytes.is_empty() {
        return None;
    }
    let bytes = &bytes[..bytes.len().min(NAME_MOST + 1)];
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).ok()
}

/// A service as [`c_name`] takes it; but one too long to copy whole that
/// glibc reads as a port number (`strtoul`: blanks, a sign, then decimal
/// digits to the end) goes as that number written short, so it is looked
/// up as on WasmEdge, which copies a name whole: `00…080` is port 80.
fn service_name(bytes: &[u8]) -> Name {
    let name = c_name(bytes)?;
    if name.as_bytes().len() <= NAME_MOST {
        return Some(name);
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = &bytes[..end];
    let blanks = text
        .iter()
        .take_while(|b| b" \t\n\x0b\x0c\r".contains(b))
        .count();
    let text = &text[blanks..];
    let (sign, digits) = match text.first() {
        Some(&sign @ (b'+' | b'-')) => (Some(sign), &text[1..]),
        _ => (None, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Some(name);
    }
    // Leading zeros add nothing; past 30 digits the value is over
    // `ULONG_MAX` (what `strtoul` then answers) either way.
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    let digits = match &digits[zeros.min(digits.len() - 1)..] {
        d if d.len() > 30 => &d[..30],
        d => d,
    };
    let short: Vec<u8> = sign.into_iter().chain(digits.iter().copied()).collect();
    CString::new(short).ok()
}

/// Whether `name` is too long to be found (see [`NAME_MOST`]).
fn is_long(name: &Name) -> bool {
    name.as_ref()
        .is_some_and(|c| c.as_bytes().len() > NAME_MOST)
}

/// What the C library answers for a service too long to be found.
fn service_too_long(service: &Name, flags: u16) -> Option<Errno> {
    is_long(service).then_some(match flags & AI_NUMERICSERV {
        0 => from_eai(libc::EAI_SERVICE),
        _ => AI_NONAME,
    })
}

/// What the C library answers for a host name too long to be found: what
/// it finds wrong with the service and the hints, which glibc looks at
/// before the name (asked without a name, so nothing is looked up), else
/// that the name is not known.
fn unknown_name(service: &Name, hints: &libc::addrinfo) -> Errno {
    // Without a name, a canonical one cannot be asked for: not the
    // service's fault.
    let hints = libc::addrinfo {
        ai_flags: hints.ai_flags & !libc::AI_CANONNAME,
        ..*hints
    };
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the service is NUL-terminated or NULL; `result` is freed below.
    let r = unsafe {
        libc::getaddrinfo(
            std::ptr::null(),
            service.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &hints,
            &mut result,
        )
    };
    if r != 0 {
        return from_eai(r);
    }
    // SAFETY: `result` came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(result) };
    AI_NONAME
}

fn lookup(
    mem: &mut GuestMemory<'_>,
    a: &Lookup,
    node: &Name,
    service: &Name,
    hints: &Hints,
    records: &[Record],
) -> WasiResult {
    // SAFETY: an all-zero addrinfo is valid; the fields set below are plain values.
    let mut sys_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    sys_hints.ai_flags = to_ai_flags(hints.flags);
    sys_hints.ai_family = match hints.family {
        1 => libc::AF_INET,
        2 => libc::AF_INET6,
        _ => libc::AF_UNSPEC,
    };
    sys_hints.ai_socktype = match hints.socktype {
        1 => libc::SOCK_DGRAM,
        2 => libc::SOCK_STREAM,
        _ => 0,
    };
    sys_hints.ai_protocol = match hints.protocol {
        1 => libc::IPPROTO_TCP,
        2 => libc::IPPROTO_UDP,
        _ => 0,
    };
    sys_hints.ai_addrlen = hints.addrlen;
    if let Some(errno) = service_too_long(service, hints.flags) {
        return Err(errno);
    }
    if is_long(node) {
        return Err(unknown_name(service, &sys_hints));
    }
    let mut result: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the names are NUL-terminated or NULL; `result` is freed below.
    let r = unsafe {
        libc::getaddrinfo(
            node.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            service.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &sys_hints,
            &mut result,
        )
    };
    if r != 0 {
        return Err(from_eai(r));
    }
    let written = write_results(mem, a, records, result);
    // SAFETY: `result` came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(result) };
    written
}

fn write_results(
    mem: &mut GuestMemory<'_>,
    a: &Lookup,
    records: &[Record],
    list: *const libc::addrinfo,
) -> WasiResult {
    let mut found = Vec::new();
    let mut item = list;
    while !item.is_null() {
        found.push(item);
        // SAFETY: a node of the list getaddrinfo returned.
        item = unsafe { (*item).ai_next };
    }
    let n = found.len().min(records.len());
    mem.write_u32(a.res_len, n as u32)?;
    for (record, &item) in records.iter().zip(&found[..n]) {
        // SAFETY: a node of the list getaddrinfo returned.
        let item = unsafe { &*item };
        mem.write_u16(record.at, from_ai_flags(item.ai_flags))?;
        mem.write_u8(
            record.at + 3,
            match item.ai_socktype {
                libc::SOCK_DGRAM => 1,
                libc::SOCK_STREAM => 2,
                _ => 0,
            },
        )?;
        mem.write_u8(
            record.at + 4,
            match item.ai_protocol {
                libc::IPPROTO_TCP => 1,
                libc::IPPROTO_UDP => 2,
                _ => 0,
            },
        )?;
        let family = match item.ai_family {
            libc::AF_INET => 1,
            libc::AF_INET6 => 2,
            libc::AF_UNIX => 3,
            _ => 0,
        };
        mem.write_u8(record.at + 2, family)?;
        mem.write_u32(record.at + 8, item.ai_addrlen)?;
        if item.ai_canonname.is_null() {
            mem.write_u32(record.at + 20, 0)?;
        } else {
            // SAFETY: a NUL-terminated name from getaddrinfo.
            let name = unsafe { std::ffi::CStr::from_ptr(item.ai_canonname) }.to_bytes_with_nul();
            mem.write_u32(record.at + 20, name.len() as u32 - 1)?;
            // WasmEdge copies the whole name whatever the buffer's length.
            mem.write(record.canonname, name)?;
        }
        // At least the family's two bytes: a C library that gave fewer
        // would otherwise have the length below wrap.
        if item.ai_addrlen > 2 && !item.ai_addr.is_null() {
            mem.write_u8(record.sockaddr, family)?;
            let size = if family == 2 { 26 } else { 14 };
            // SAFETY: ai_addr holds ai_addrlen bytes (more than 2), of which
            // at most the rest after the family are read.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    item.ai_addr.cast::<u8>().add(2),
                    size.min(item.ai_addrlen as usize - 2),
                )
            };
            mem.write(record.sa_data, bytes)?;
            mem.write_u32(record.sockaddr + 4, size as u32)?;
        }
    }
    Ok(())
}

const AI_FLAG_PAIRS: [(u16, i32); 7] = [
    (1, libc::AI_PASSIVE),
    (2, libc::AI_CANONNAME),
    (4, libc::AI_NUMERICHOST),
    (8, libc::AI_NUMERICSERV),
    (16, libc::AI_V4MAPPED),
    (32, libc::AI_ALL),
    (64, libc::AI_ADDRCONFIG),
];

fn to_ai_flags(flags: u16) -> i32 {
    AI_FLAG_PAIRS
        .iter()
        .filter(|(wasi, _)| flags & wasi != 0)
        .fold(0, |acc, (_, sys)| acc | sys)
}

fn from_ai_flags(flags: i32) -> u16 {
    AI_FLAG_PAIRS
        .iter()
        .filter(|(_, sys)| flags & sys != 0)
        .fold(0, |acc, (wasi, _)| acc | wasi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name of a MiB is copied only as far as shows it too long, and
    /// answered as the C library answers a name it cannot find.
    #[test]
    fn a_name_too_long_to_find_is_not_copied_whole() {
        let mut long = vec![b'a'; 1 << 20];
        let name = c_name(&long);
        assert_eq!(
            name.as_ref().map(|c| c.as_bytes().len()),
            Some(NAME_MOST + 1)
        );
        assert!(is_long(&name));
        let service = c_name(&long);
        let node = c_name(b"localhost");
        assert_eq!(service_too_long(&service, 0), Some(Errno(85)));
        assert_eq!(service_too_long(&service, AI_NUMERICSERV), Some(AI_NONAME));
        // A port number of any length is read as glibc reads it.
        let mut port = vec![b'0'; 1 << 20];
        port.extend_from_slice(b"80");
        let read = |bytes: &[u8]| service_name(bytes).map(CString::into_bytes);
        assert_eq!(read(&port), Some(b"80".to_vec()));
        let mut signed = b" \t+".to_vec();
        signed.extend_from_slice(&port);
        signed.extend_from_slice(b"\0ignored");
        assert_eq!(read(&signed), Some(b"+80".to_vec()));
        assert_eq!(read(&vec![b'0'; 5000]), Some(b"0".to_vec()));
        let huge = [&b"-"[..], &[b'9'; 5000]].concat();
        assert_eq!(read(&huge), Some([&b"-"[..], &[b'9'; 30]].concat()));
        port.push(b'x');
        assert_eq!(read(&port).map(|n| n.len()), Some(NAME_MOST + 1));
        // Up to the limit, and to a NUL, a name is what it says.
        long[NAME_MOST] = 0;
        let name = c_name(&long);
        assert_eq!(name.as_ref().map(|c| c.as_bytes().len()), Some(NAME_MOST));
        assert!(!is_long(&name));
        assert_eq!(service_too_long(&node, 0), None);
    }

    /// A host name too long to be found gets what glibc finds wrong with
    /// the service and the hints first (it looks at them before the name),
    /// as WasmEdge, which hands glibc the name whole: an unknown service,
    /// a socket type its protocol does not fit; else an unknown name.
    #[test]
    fn a_name_too_long_to_find_is_answered_after_its_service_and_hints() {
        // SAFETY: an all-zero addrinfo is valid.
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = libc::AF_INET;
        hints.ai_flags = libc::AI_NUMERICHOST | libc::AI_CANONNAME;
        hints.ai_socktype = libc::SOCK_STREAM;
        let named = |s: &str| CString::new(s).ok();
        assert_eq!(
            unknown_name(&named("8a"), &hints),
            from_eai(libc::EAI_SERVICE)
        );
        assert_eq!(unknown_name(&named("80"), &hints), AI_NONAME);
        assert_eq!(unknown_name(&None, &hints), AI_NONAME);
        hints.ai_socktype = libc::SOCK_DGRAM;
        hints.ai_protocol = libc::IPPROTO_TCP;
        assert_eq!(
            unknown_name(&named("80"), &hints),
            from_eai(libc::EAI_SOCKTYPE)
        );
    }

    /// A chain of one record that points back at itself, and a `max` of
    /// 2^32 - 1: checked at once, with a bounded number of records kept.
    #[test]
    fn a_chain_that_loops_is_walked_once_round_and_kept_bounded() {
        let mut bytes = vec![0u8; 4096];
        let record = 64u32;
        bytes[0..4].copy_from_slice(&record.to_le_bytes());
        let next = record as usize + 24;
        bytes[next..next + 4].copy_from_slice(&record.to_le_bytes());
        let lookup = |max| Lookup {
            node: 0,
            node_len: 0,
            service: 0,
            service_len: 0,
            hints: 0,
            res: 0,
            max,
            res_len: 0,
        };
        let mem = GuestMemory(&mut bytes);
        let started = std::time::Instant::now();
        let records = chain(&mem, &lookup(u32::MAX))
            .map_err(|t| t.0)
            .expect("valid chain");
        assert_eq!(records.len(), KEPT_RECORDS as usize);
        assert!(records.iter().all(|r| r.at == record));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            chain(&mem, &lookup(3))
                .map_err(|t| t.0)
                .expect("valid")
                .len(),
            3
        );
        // Past the kept ones, a record is checked as WasmEdge checks each:
        // one outside memory, or whose canonical name or address bytes
        // are, fails the call.
        let count = KEPT_RECORDS + 3;
        let mut bytes = vec![0u8; 64 + 28 * count as usize + 64];
        let at = |i: u32| 64 + 28 * i;
        for i in 0..count {
            let (this, next) = (at(i) as usize, at(i + 1));
            bytes[this + 24..this + 28].copy_from_slice(&next.to_le_bytes());
        }
        bytes[0..4].copy_from_slice(&64u32.to_le_bytes());
        // The last record's successor lies outside memory.
        let past = bytes.len() as u32 - 8;
        let last = at(count - 1) as usize;
        bytes[last + 24..last + 28].copy_from_slice(&past.to_le_bytes());
        // Record KEPT + 1: a canonical name of 16 bytes at the very end.
        let named = at(KEPT_RECORDS + 1) as usize;
        bytes[named + 16..named + 20].copy_from_slice(&past.to_le_bytes());
        bytes[named + 20..named + 24].copy_from_slice(&16u32.to_le_bytes());
        let mem = GuestMemory(&mut bytes);
        assert!(chain(&mem, &lookup(KEPT_RECORDS + 1)).is_ok());
        assert!(chain(&mem, &lookup(KEPT_RECORDS + 2)).is_err());
        bytes[named + 20..named + 24].copy_from_slice(&8u32.to_le_bytes());
        let mem = GuestMemory(&mut bytes);
        assert!(chain(&mem, &lookup(count)).is_ok());
        assert!(chain(&mem, &lookup(count + 1)).is_err());
    }
}
