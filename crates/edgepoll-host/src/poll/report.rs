//! Reporting: the events of ready descriptors, fired clocks and invalid
//! subscriptions, with `nbytes` and flags as WasmEdge computes them.

use super::epoll_set::is_unlisted;
use super::*;

impl Poller {
    /// One epoll event, as WasmEdge's `Poller::wait` maps it: a read event on
    /// EPOLLIN, a write event on EPOLLOUT, both on a bare hang-up. Returns
    /// whether it was for a parked descriptor (one no subscription lists),
    /// which then leaves epoll.
    pub(super) fn report_ready(&mut self, fds: &FdTable, mask: u32, fd: u32) -> bool {
        let Some(watch) = self.watches.get(&fd).copied() else {
            return false;
        };
        if is_unlisted(&watch) {
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, watch.host, 0, fd);
            self.watches.remove(&fd);
            return true;
        }
        let hangup = mask & libc::EPOLLHUP as u32 != 0;
        let bare_hangup = hangup && mask & (libc::EPOLLIN | libc::EPOLLOUT) as u32 == 0;
        let flags = if hangup { HANGUP } else { 0 };
        let descriptor = fds.get(fd).ok();
        if watch.read.owner != NONE && (mask & libc::EPOLLIN as u32 != 0 || bare_hangup) {
            let nbytes = descriptor.map_or(0, read_nbytes);
            self.push_fd_event(watch.read.owner, FD_READ, nbytes, flags);
        }
        if watch.write.owner != NONE && (mask & libc::EPOLLOUT as u32 != 0 || bare_hangup) {
            let nbytes = descriptor.map_or(1, |d| write_nbytes(d.host_fd()));
            self.push_fd_event(watch.write.owner, FD_WRITE, nbytes, flags);
        }
        false
    }

    pub(super) fn push_fd_event(&mut self, index: u32, kind: u8, nbytes: u64, flags: u16) {
        if self.sub_error.get(index as usize).is_some_and(|&e| e != 0) {
            return;
        }
        let sub = self.record_at(index);
        self.out.push(ReadyEvent {
            index,
            userdata: sub.userdata,
            error: 0,
            kind,
            nbytes,
            flags,
        });
    }

    /// Every subscription with an error reports it, each call.
    pub(super) fn report_errors(&mut self) {
        if self.errored == 0 {
            return;
        }
        for i in 0..self.sub_error.len() {
            let e = self.sub_error[i];
            if e != 0 {
                let sub = self.record_at(i as u32);
                self.out.push(ReadyEvent {
                    index: i as u32,
                    userdata: sub.userdata,
                    error: e,
                    kind: sub.tag,
                    nbytes: 0,
                    flags: 0,
                });
            }
        }
    }

    /// When clock subscription `index` fires (`None`: it is not valid),
    /// seen at `at`: one set of readings for all, so that a deadline
    /// already passed is `at.now` itself (not a moment later, which `now`
    /// would never reach).
    pub(super) fn clock_deadline(
        &self,
        index: u32,
        start: Instant,
        at: &Readings,
    ) -> Option<Instant> {
        if self.sub_error[index as usize] != 0 {
            return None;
        }
        let sub = self.record_at(index);
        // WasmEdge arms a timer of at least 1 ns: 0 would disarm it.
        let timeout = Duration::from_nanos(sub.timeout.max(1));
        if sub.flags & ABSTIME == 0 {
            return Some(start + timeout);
        }
        let reading = match sub.clock_id {
            clock::REALTIME => at.realtime,
            _ => at.monotonic,
        };
        Some(at.now + timeout.saturating_sub(Duration::from_nanos(reading)))
    }

    pub(super) fn earliest_clock(&self, start: Instant) -> Option<Instant> {
        let at = Readings::take();
        self.clocks
            .iter()
            .filter_map(|&c| self.clock_deadline(c, start, &at))
            .min()
    }

    pub(super) fn fire_clocks(&mut self, start: Instant) {
        let at = Readings::take();
        // Taken out for the walk (no list of the fired is allocated per
        // call); nothing below touches the set.
        let clocks = std::mem::take(&mut self.clocks);
        for &c in &clocks {
            if self
                .clock_deadline(c, start, &at)
                .is_none_or(|d| d > at.now)
            {
                continue;
            }
            let sub = self.record_at(c);
            self.out.push(ReadyEvent {
                index: c,
                userdata: sub.userdata,
                error: 0,
                kind: CLOCK,
                nbytes: 0,
                flags: 0,
            });
        }
        self.clocks = clocks;
    }
}

/// The clocks read together: the guest's clocks first, then the instant,
/// so that a deadline computed from them is never early (a wait that ends
/// at it always finds the clock fired, as WasmEdge's timer would).
pub(super) struct Readings {
    pub(super) monotonic: u64,
    pub(super) realtime: u64,
    pub(super) now: Instant,
}

impl Readings {
    pub(super) fn take() -> Readings {
        let monotonic = clock::monotonic_nanos();
        let realtime = clock::realtime_nanos();
        Readings {
            monotonic,
            realtime,
            now: Instant::now(),
        }
    }
}

/// `nbytes` of a read event as WasmEdge reports it: its `FIONREAD` check is
/// inverted, so 1 when the ioctl works and 0 when it fails. It works on a
/// socket that never listened (known without asking) and a pipe; on a
/// listener it fails, unless the listener was shut for reading, which
/// disconnects a TCP one but not a Unix one: asked, as WasmEdge asks.
pub(super) fn read_nbytes(d: &Descriptor) -> u64 {
    match &d.entry {
        Entry::Socket(s) if !s.listening => 1,
        _ => {
            let fd = d.host_fd();
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            u64::from(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } == 0)
        }
    }
}

/// `nbytes` of a write event as WasmEdge reports it: the send buffer's free
/// space, or 1 when either query fails.
pub(super) fn write_nbytes(fd: RawFd) -> u64 {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let mut used: libc::c_int = 0;
    // SAFETY: getsockopt and ioctl each write one int.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        ) == 0
            && libc::ioctl(fd, libc::TIOCOUTQ, &mut used) == 0
    };
    if ok {
        i64::from(size - used) as u64
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fd_table::Socket;
    use std::os::fd::FromRawFd;

    /// A listener of `family` (bound where the kernel likes), listening.
    fn listener(family: libc::c_int) -> Descriptor {
        // SAFETY: plain system calls on a socket this test owns.
        unsafe {
            let raw = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0);
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            addr.ss_family = family as libc::sa_family_t;
            // An abstract Unix address the kernel names (autobind).
            let len = match family {
                libc::AF_UNIX => std::mem::size_of::<libc::sa_family_t>(),
                _ => std::mem::size_of::<libc::sockaddr_in>(),
            };
            if family == libc::AF_INET {
                let sin = &mut *(&mut addr as *mut _ as *mut libc::sockaddr_in);
                sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            }
            let bound = libc::bind(raw, &addr as *const _ as *const libc::sockaddr, len as u32);
            assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
            assert_eq!(libc::listen(raw, 4), 0);
            let socket = Socket {
                fd: std::os::fd::OwnedFd::from_raw_fd(raw),
                listening: true,
            };
            Descriptor::new(Entry::Socket(socket), 0, 0)
        }
    }

    /// WasmEdge's read `nbytes` of a listener: 0, and after a shutdown of
    /// its reading 1 for TCP (disconnected: `FIONREAD` works) but still 0
    /// for a Unix socket (still listening). The host reported 1 for both.
    #[test]
    fn a_listener_s_read_nbytes_is_what_fionread_says() {
        for (family, after) in [(libc::AF_INET, 1), (libc::AF_UNIX, 0)] {
            let d = listener(family);
            assert_eq!(read_nbytes(&d), 0, "{family}");
            // SAFETY: plain system call.
            assert_eq!(unsafe { libc::shutdown(d.host_fd(), libc::SHUT_RD) }, 0);
            assert_eq!(read_nbytes(&d), after, "{family}");
        }
    }
}
