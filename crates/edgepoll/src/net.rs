//! Sockets: WasmEdge's `TcpListener` and `TcpStream`, plus the calls edgepoll
//! needs that `wasmedge_wasi_socket` 0.5 gets wrong or lacks.
//!
//! - [`local_addr`], [`peer_addr`] and [`accept`] report real addresses. The
//!   crate's own `local_addr()`/`peer_addr()` read `0.0.0.0` in release builds:
//!   its FFI call writes into a buffer declared immutable, which the optimiser
//!   may assume still holds zeros. These pass a mutable buffer.
//! - [`connect`] starts a non-blocking connect to IPv4 or IPv6 (the crate's
//!   `TcpStream::connect` blocks and refuses IPv6).
//! - A half-close is `TcpStream::shutdown(Shutdown::Write)` (the stream's
//!   own method): the peer reads an end of stream, and reading goes on.
//!   Dropping a stream shuts it down both ways, then closes it;
//!   [`close_with_reset`] closes with a reset.
//! - [`UdpSocket`] is connected to one peer, for the DNS resolver (the
//!   crate's `recv_from` panics on an unknown address family and reads its
//!   address from a buffer declared immutable).

pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
/// A listening socket: made by [`bind`], its connections taken by
/// [`accept`].
///
/// ```
/// let listener = edgepoll::net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert_ne!(edgepoll::net::local_addr(&listener).unwrap().port(), 0);
/// ```
pub use wasmedge_wasi_socket::TcpListener;
/// A connected socket: from [`accept`] or [`connect`], read with [`recv`]
/// and written with [`send`] (or `Read` and `Write`).
///
/// ```
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// use std::time::Duration;
/// # fn main() -> std::io::Result<()> {
/// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
/// let client = net::connect(net::local_addr(&listener)?)?;
/// let (mut poll, mut events) = (Poll::new(), Events::with_capacity(8));
/// poll.register(&listener, Token(0), Interest::READABLE)?;
/// poll.poll(&mut events, Some(Duration::from_secs(10)))?;
/// let (server_side, _) = net::accept(&listener)?;
/// poll.deregister(&listener)?;
/// // Accepted: the client's connect is done, and its buffer has room.
/// assert_eq!(net::send(&client, b"hi")?, 2);
/// poll.register(&server_side, Token(1), Interest::READABLE)?;
/// poll.poll(&mut events, Some(Duration::from_secs(10)))?;
/// let mut buf = [0u8; 8];
/// assert_eq!(net::recv(&server_side, &mut buf)?, 2);
/// assert_eq!(&buf[..2], b"hi");
/// # Ok(()) }
/// ```
pub use wasmedge_wasi_socket::TcpStream;

use crate::sys::wasi::{self, WasiAddress};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use wasmedge_wasi_socket::socket::{AddressFamily, Socket, SocketType};

const ERRNO_INPROGRESS: u32 = 26;

/// Binds a non-blocking listener (with `SO_REUSEADDR`, backlog 1024).
/// An IPv6 address with a zone (`[fe80::1%2]`) is refused with
/// `InvalidInput`: WasmEdge's sockets carry no scope id, so a link-local
/// address cannot be reached and any other zone would be dropped unsaid.
/// `[::]` takes IPv4 connections too where the host's
/// `net.ipv6.bindv6only` is 0 (Linux's default; WasmEdge sets no
/// `IPV6_V6ONLY`), their peers then written `[::ffff:a.b.c.d]`
/// ([`Ipv6Addr::to_canonical`](std::net::Ipv6Addr::to_canonical) gives
/// the IPv4 address back).
///
/// ```
/// let listener = edgepoll::net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// println!("listening on {}", edgepoll::net::local_addr(&listener).unwrap());
/// ```
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    refuse_zone(&addr)?;
    let socket = Socket::new(AddressFamily::from(&addr), SocketType::Stream)?;
    socket.setsockopt(
        wasmedge_wasi_socket::socket::SocketOptLevel::SolSocket,
        wasmedge_wasi_socket::socket::SocketOptName::SoReuseaddr,
        1i32,
    )?;
    socket.bind(&addr)?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    // SAFETY: the descriptor is a listening socket we own; ownership moves over.
    Ok(unsafe { TcpListener::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(socket)) })
}

/// Accepts one connection as a non-blocking stream, with its real peer address.
/// `WouldBlock` when none is waiting; `ConnectionAborted` for one that
/// cannot be served (try the next): reset before it was accepted, or
/// failing the calls that set it up. Linux's accept also passes on network
/// errors of the connection it took, each to be retried as `WouldBlock` is
/// not: WASI's ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTUNREACH, ENETUNREACH,
/// ENOTSUP and EPERM (a firewall's) come as those raw errors, and
/// [`Server`](crate::Server) takes the next connection after each too.
/// Every other error is the listener's (EMFILE and ENFILE: no descriptor
/// free).
///
/// ```
/// use edgepoll::net;
/// use std::io::ErrorKind;
/// let listener = net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// // None waiting yet (a server waits for the listener to poll readable).
/// assert_eq!(net::accept(&listener).map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock);
/// ```
pub fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let mut fd = 0u32;
    // SAFETY: `fd` is a valid out-pointer for the duration of the call.
    let errno = unsafe { wasi::sock_accept(listener.as_raw_fd() as u32, &mut fd) };
    if errno != 0 {
        return Err(io::Error::from_raw_os_error(errno as i32));
    }
    // SAFETY: the runtime just handed us this new descriptor.
    let stream = unsafe { TcpStream::from_raw_fd(fd as i32) };
    // A connection reset while it waited to be accepted (Linux still hands
    // it over, with no peer any more) fails here, and so might one the
    // runtime cannot describe. Aborted, as BSD's accept says of the first:
    // it is that connection's fault, not the listener's (whose EINVAL
    // would start a drain), and the stream is dropped. Any other failure
    // keeps its cause inside, to be told.
    let aborted = |e: io::Error| match e.kind() {
        io::ErrorKind::NotConnected => io::Error::from(io::ErrorKind::ConnectionAborted),
        _ => io::Error::new(io::ErrorKind::ConnectionAborted, e),
    };
    stream.set_nonblocking(true).map_err(aborted)?;
    let peer = peer_addr(&stream).map_err(aborted)?;
    Ok((stream, peer))
}

/// Starts connecting to `addr` without blocking. The connect completes when the
/// stream polls writable; then [`take_error`] tells whether it succeeded.
/// A refused or failed connect is reported as a hang-up
/// ([`Event::is_hang_up`](crate::Event::is_hang_up)) with the readiness
/// asked for, usually not as [`Event::is_error`](crate::Event::is_error):
/// [`take_error`] names the failure (`ConnectionRefused`), after which a
/// read returns `Ok(0)`, as at an end of stream. Where the poll's own look
/// at a quiet socket found the failure first, it took the socket's error
/// with it: the event then carries it
/// ([`Event::raw_error`](crate::Event::raw_error)) and [`take_error`] finds
/// none, so check both (or, as the loop does, ask for the peer's address,
/// which a failed connect has none of). An IPv6 address with a zone is
/// refused, as by [`bind`].
///
/// ```
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// # fn main() -> std::io::Result<()> {
/// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
/// # let addr = net::local_addr(&listener)?;
/// let stream = net::connect(addr)?;
/// let mut poll = Poll::new();
/// poll.register(&stream, Token(1), Interest::WRITABLE)?;
/// let mut events = Events::with_capacity(8);
/// poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))?;
/// assert!(events.iter().any(|e| e.token() == Token(1) && e.is_writable()));
/// match net::take_error(&stream)? {
///     None => println!("connected to {}", net::peer_addr(&stream)?),
///     Some(e) => println!("the connect failed: {e}"),
/// }
/// # Ok(()) }
/// ```
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    Ok(TcpStream::from(open_connected(addr, SocketType::Stream)?))
}

/// A non-blocking socket of `kind`, connecting (a stream) or connected (a
/// datagram socket) to `addr`.
fn open_connected(addr: SocketAddr, kind: SocketType) -> io::Result<Socket> {
    refuse_zone(&addr)?;
    let socket = Socket::new(AddressFamily::from(&addr), kind)?;
    socket.set_nonblocking(true)?;
    let (mut octets, size) = match addr.ip() {
        IpAddr::V4(ip) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&ip.octets());
            (b, 4)
        }
        IpAddr::V6(ip) => (ip.octets(), 16),
    };
    let mut address = WasiAddress {
        buf: octets.as_mut_ptr(),
        size,
    };
    // SAFETY: `address` points at `octets`, both alive for the call.
    let errno =
        unsafe { wasi::sock_connect(socket.as_raw_fd() as u32, &mut address, addr.port() as u32) };
    if errno != 0 && errno != ERRNO_INPROGRESS {
        return Err(io::Error::from_raw_os_error(errno as i32));
    }
    Ok(socket)
}

/// An IPv6 zone (scope id) refused: WasmEdge's `sock_bind` and
/// `sock_connect` take 16 bytes and a port, so it would be dropped and a
/// link-local address fail with an unexplained `EINVAL`.
fn refuse_zone(addr: &SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an IPv6 zone (scope id) cannot be given to WasmEdge's sockets, which carry none",
        )),
        _ => Ok(()),
    }
}

/// A UDP socket connected to one peer, non-blocking: it sends only to that
/// peer and hears only from it (the kernel drops datagrams from anyone
/// else), from an ephemeral port the kernel picks at random.
///
/// ```no_run
/// let dns = edgepoll::net::UdpSocket::connect("127.0.0.1:53".parse().unwrap()).unwrap();
/// dns.send(b"query").unwrap();
/// ```
pub struct UdpSocket(Socket);

impl UdpSocket {
    /// Opens the socket and connects it to `peer` (no packet is sent).
    ///
    /// ```no_run
    /// let socket = edgepoll::net::UdpSocket::connect("[::1]:5353".parse().unwrap())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(peer: SocketAddr) -> io::Result<UdpSocket> {
        open_connected(peer, SocketType::Datagram).map(UdpSocket)
    }

    /// Sends `buf` as one datagram.
    ///
    /// ```no_run
    /// # let socket = edgepoll::net::UdpSocket::connect("127.0.0.1:5353".parse().unwrap())?;
    /// let sent = socket.send(b"ping")?;
    /// assert_eq!(sent, 4); // a datagram goes whole or not at all
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        send_one(self.0.as_raw_fd(), buf)
    }

    /// Takes one datagram into `buf` (a longer one is cut to its length);
    /// `WouldBlock` when none is waiting. An error the peer's host reported
    /// (`ConnectionRefused`: nothing listens there) comes here too.
    ///
    /// ```no_run
    /// # let socket = edgepoll::net::UdpSocket::connect("127.0.0.1:5353".parse().unwrap())?;
    /// let mut datagram = [0u8; 512];
    /// match socket.recv(&mut datagram) {
    ///     Ok(n) => println!("{n} bytes"),
    ///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {} // poll first
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv_fd(self.0.as_raw_fd(), buf)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Reads what has arrived into `buf`, like `Read::read` on the stream (0 at
/// the end of the stream, `WouldBlock` when nothing is there), with one call
/// into the runtime and nothing around it: the event loop's read path.
///
/// ```no_run
/// # fn demo(stream: &edgepoll::net::TcpStream) -> std::io::Result<()> {
/// let mut buf = [0u8; 1024];
/// let n = edgepoll::net::recv(stream, &mut buf)?;
/// # Ok(()) }
/// ```
#[inline]
pub fn recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    recv_fd(stream.as_raw_fd(), buf)
}

#[inline]
fn recv_fd(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut iovec = wasi::Iovec {
        buf: buf.as_mut_ptr(),
        size: buf.len(),
    };
    let (mut received, mut flags) = (0usize, 0usize);
    // SAFETY: the record points into `buf`, writable for its length, and both
    // out-pointers are valid for the call.
    let errno = unsafe { wasi::sock_recv(fd as u32, &mut iovec, 1, 0, &mut received, &mut flags) };
    match errno {
        0 => Ok(received.min(buf.len())),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// Sends what the socket's buffer takes of `buf`, like `Write::write` on the
/// stream (a short count is normal; `WouldBlock` when the buffer is full).
///
/// ```no_run
/// # fn demo(stream: &edgepoll::net::TcpStream) -> std::io::Result<()> {
/// let sent = edgepoll::net::send(stream, b"hello")?;
/// # Ok(()) }
/// ```
#[inline]
pub fn send(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    send_one(stream.as_raw_fd(), buf)
}

#[inline]
fn send_one(fd: std::os::fd::RawFd, buf: &[u8]) -> io::Result<usize> {
    let iovec = wasi::Iovec {
        buf: buf.as_ptr().cast_mut(),
        size: buf.len(),
    };
    let mut sent = 0u32;
    // SAFETY: the record points into `buf`, readable for its length (the
    // runtime only reads through it), and the out-pointer is valid.
    let errno = unsafe { wasi::sock_send(fd as u32, &iovec, 1, 0, &mut sent) };
    match errno {
        0 => Ok((sent as usize).min(buf.len())),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// Sends what the socket's buffer takes of `bufs`, in order, in one call
/// (like `Write::write_vectored`; empty parts are skipped and at most
/// [`MAX_SEND_PARTS`] are sent at once).
///
/// ```no_run
/// # fn demo(stream: &edgepoll::net::TcpStream) -> std::io::Result<()> {
/// let sent = edgepoll::net::send_vectored(stream, &[b"head ", b"body"])?;
/// # Ok(()) }
/// ```
pub fn send_vectored(stream: &TcpStream, bufs: &[&[u8]]) -> io::Result<usize> {
    send_fd(stream.as_raw_fd(), bufs)
}

#[inline]
fn send_fd(fd: std::os::fd::RawFd, bufs: &[&[u8]]) -> io::Result<usize> {
    let mut iovecs: [wasi::Iovec; MAX_SEND_PARTS] = std::array::from_fn(|_| wasi::Iovec {
        buf: std::ptr::null_mut(),
        size: 0,
    });
    let mut count = 0;
    let mut total = 0;
    for buf in bufs
        .iter()
        .filter(|buf| !buf.is_empty())
        .take(MAX_SEND_PARTS)
    {
        iovecs[count] = wasi::Iovec {
            buf: buf.as_ptr().cast_mut(),
            size: buf.len(),
        };
        count += 1;
        total += buf.len();
    }
    if count == 0 {
        return Ok(0);
    }
    let mut sent = 0u32;
    // SAFETY: the first `count` records point into `bufs`, readable for their
    // lengths (the runtime only reads through them), and the out-pointer is valid.
    let errno = unsafe { wasi::sock_send(fd as u32, iovecs.as_ptr(), count as u32, 0, &mut sent) };
    match errno {
        0 => Ok((sent as usize).min(total)),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

pub use crate::http::MAX_SEND_PARTS;

/// The pending error of a socket (`SO_ERROR`), clearing it: `Ok(None)` after a
/// successful connect. (The signature is std's and mio's; a failure to read
/// the error comes as `Ok(Some(_))` too, which a caller takes as the connect
/// failing, as it should.)
///
/// ```
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// # fn main() -> std::io::Result<()> {
/// # let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
/// # let addr = net::local_addr(&listener)?;
/// let stream = net::connect(addr)?;
/// let (mut poll, mut events) = (Poll::new(), Events::with_capacity(8));
/// poll.register(&stream, Token(1), Interest::WRITABLE)?;
/// poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))?;
/// // A listener was there: the connect succeeded.
/// assert!(net::take_error(&stream)?.is_none());
/// # Ok(()) }
/// ```
pub fn take_error(stream: &TcpStream) -> io::Result<Option<io::Error>> {
    let socket: &Socket = stream.as_ref();
    match socket.take_error() {
        Ok(()) => Ok(None),
        Err(e) => Ok(Some(e)),
    }
}

/// Closes the stream with a reset (`SO_LINGER` of 0, then a close without
/// the shutdown a dropped stream does first, whose FIN would go out ahead
/// of the reset and read as a clean end): what the peer has not taken is
/// dropped, its memory freed at once, and the peer reads `ECONNRESET`
/// after what it had received. For a peer given up on, such as one that
/// has stopped reading, whose queued bytes would otherwise keep the closed
/// socket alive until the kernel gives up on it. Should the option fail,
/// the close is a plain one.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # let listener = edgepoll::net::bind("127.0.0.1:0".parse().unwrap())?;
/// # let addr = edgepoll::net::local_addr(&listener)?;
/// let stream = edgepoll::net::connect(addr)?;
/// edgepoll::net::close_with_reset(stream); // a reset, not a FIN
/// # Ok(()) }
/// ```
pub fn close_with_reset(stream: TcpStream) {
    let socket: &Socket = stream.as_ref();
    // `struct linger` in the guest's C layout: on, 0 seconds.
    let _ = socket.setsockopt(
        wasmedge_wasi_socket::socket::SocketOptLevel::SolSocket,
        wasmedge_wasi_socket::socket::SocketOptName::SoLinger,
        [1i32, 0i32],
    );
    // SAFETY: the descriptor is the stream's own, and moves over: closed
    // as a file is closed, with no shutdown.
    drop(unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(stream)) });
}

/// The address a socket is bound to: the port the system picked for port 0.
///
/// ```
/// let listener = edgepoll::net::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let addr = edgepoll::net::local_addr(&listener).unwrap();
/// assert!(addr.ip().is_loopback() && addr.port() != 0);
/// ```
pub fn local_addr(socket: &impl AsRawFd) -> io::Result<SocketAddr> {
    address_of(socket, wasi::sock_getlocaladdr)
}

/// The address of a connected socket's peer.
///
/// ```
/// use edgepoll::{net, Events, Interest, Poll, Token};
/// # fn main() -> std::io::Result<()> {
/// let listener = net::bind("127.0.0.1:0".parse().unwrap())?;
/// let client = net::connect(net::local_addr(&listener)?)?;
/// let (mut poll, mut events) = (Poll::new(), Events::with_capacity(8));
/// poll.register(&listener, Token(0), Interest::READABLE)?;
/// poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))?;
/// let (server_side, peer) = net::accept(&listener)?;
/// assert_eq!(net::peer_addr(&server_side)?, peer);
/// assert_eq!(peer, net::local_addr(&client)?);
/// # Ok(()) }
/// ```
pub fn peer_addr(socket: &impl AsRawFd) -> io::Result<SocketAddr> {
    address_of(socket, wasi::sock_getpeeraddr)
}

type AddressCall = unsafe extern "C" fn(u32, *mut WasiAddress, *mut u32, *mut u32) -> u32;

fn address_of(socket: &impl AsRawFd, call: AddressCall) -> io::Result<SocketAddr> {
    let mut octets = [0u8; 16];
    let mut address = WasiAddress {
        buf: octets.as_mut_ptr(),
        size: octets.len(),
    };
    let (mut kind, mut port) = (0u32, 0u32);
    // SAFETY: all out-pointers are valid for the call; the buffer is mutable so
    // the compiler reloads it afterwards.
    let errno = unsafe {
        call(
            socket.as_raw_fd() as u32,
            &mut address,
            &mut kind,
            &mut port,
        )
    };
    if errno != 0 {
        return Err(io::Error::from_raw_os_error(errno as i32));
    }
    let octets = std::hint::black_box(octets);
    // WasmEdge writes 4 or 6 here, not the family enum (1 or 2); accept both.
    let ip = match kind {
        4 | 1 => IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])),
        6 | 2 => IpAddr::V6(Ipv6Addr::from(octets)),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("unknown address type {kind}"),
            ))
        }
    };
    Ok(SocketAddr::new(ip, port as u16))
}
