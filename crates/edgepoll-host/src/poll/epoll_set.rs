//! The epoll set: bringing epoll's registrations in line with what the
//! changed descriptors now want, parking the ones no longer listed, and
//! forgetting those the descriptor table opened or closed.

use super::*;

impl Poller {
    /// Descriptors opened, closed, renumbered or given new rights since the
    /// last call are looked at again (rights decide whether one may be
    /// polled at all). A closed one took its epoll registration with it; one
    /// whose host descriptor lives on under another number (`fd_renumber`,
    /// or stdio, which is never really closed) is taken out here, so that
    /// it neither answers for its old number nor refuses (EEXIST) to be
    /// added under the new one. Nothing else can hold the same host number
    /// in epoll yet: a descriptor opened since is registered only below.
    pub(super) fn note_table_changes(&mut self, fds: &mut FdTable) {
        let listed = fds.take_changes(&mut self.changed);
        let everything: Vec<u32>;
        let which: &[u32] = if listed {
            &self.changed
        } else {
            everything = self.watches.keys().copied().collect();
            &everything
        };
        let mut stale = Vec::new();
        for &fd in which {
            if let Some(watch) = self.watches.get_mut(&fd) {
                if watch.registered != 0 {
                    stale.push((fd, watch.host));
                }
                (watch.registered, watch.host) = (0, -1);
                if !watch.dirty {
                    watch.dirty = true;
                    self.dirty.push(fd);
                }
            }
        }
        for (fd, host) in stale {
            // ENOENT or EBADF for a descriptor closed since: nothing to do.
            let _ = self.epoll_ctl(libc::EPOLL_CTL_DEL, host, 0, fd);
        }
    }

    /// Brings epoll in line with what dirty descriptors now want.
    pub(super) fn register_dirty(&mut self, fds: &FdTable) {
        // Descriptors with duplicate subscriptions: (key, owner, errno), all
        // marked after one pass over the list.
        let mut duplicated: Vec<((u32, u8), u32, u16)> = Vec::new();
        while let Some(fd) = self.dirty.pop() {
            let Some(mut watch) = self.watches.get(&fd).copied() else {
                continue;
            };
            watch.dirty = false;
            let descriptor = fds.get(fd).ok();
            let host = descriptor.map(Descriptor::host_fd);
            if is_unlisted(&watch) {
                if watch.registered != 0 && host.is_some() {
                    // Parked: left in epoll, as a guest that alternates
                    // between a short and a long list will likely list it
                    // again; removed once epoll reports it ready.
                    watch.read.error = 0;
                    watch.write.error = 0;
                    self.watches.insert(fd, watch);
                } else {
                    self.watches.remove(&fd);
                }
                continue;
            }
            let (mut read_error, mut write_error) = match descriptor {
                None => (BADF.0, BADF.0),
                // WasmEdge's `VPoller::read`/`write`: polling needs the poll
                // right or the right to read (write) the descriptor.
                Some(d) => (
                    if d.rights & (rights::POLL_FD_READWRITE | rights::FD_READ) != 0 {
                        0
                    } else {
                        NOTCAPABLE.0
                    },
                    if d.rights & (rights::POLL_FD_READWRITE | rights::FD_WRITE) != 0 {
                        0
                    } else {
                        NOTCAPABLE.0
                    },
                ),
            };
            let mut want = 0u32;
            if watch.read.owner != NONE && read_error == 0 {
                want |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
            }
            if watch.write.owner != NONE && write_error == 0 {
                // WasmEdge's `Poller::write` asks for EPOLLRDHUP too: a full
                // socket whose peer shut down its sending side then wakes a
                // write-only wait with nothing to report (`report_ready`
                // maps EPOLLRDHUP to no event), each call until it drains.
                want |= (libc::EPOLLOUT | libc::EPOLLRDHUP) as u32;
            }
            match host {
                None => {
                    watch.registered = 0;
                    if descriptor.is_some() {
                        read_error = read_error.max(NOTCAPABLE.0);
                        write_error = write_error.max(NOTCAPABLE.0);
                    }
                }
                Some(host) => {
                    let op = match (watch.registered, want) {
                        (0, 0) => None,
                        (0, _) => Some(libc::EPOLL_CTL_ADD),
                        (_, 0) => Some(libc::EPOLL_CTL_DEL),
                        (old, new) if old != new => Some(libc::EPOLL_CTL_MOD),
                        _ => None,
                    };
                    if let Some(op) = op {
                        match self.epoll_ctl(op, host, want, fd) {
                            Ok(()) => (watch.registered, watch.host) = (want, host),
                            // A file epoll refuses (EPERM), for instance: each
                            // subscription that wanted it reports the error.
                            Err(e) => {
                                if want & libc::EPOLLIN as u32 != 0 {
                                    read_error = e.0;
                                }
                                if want & libc::EPOLLOUT as u32 != 0 {
                                    write_error = e.0;
                                }
                                watch.registered = 0;
                            }
                        }
                    }
                }
            }
            watch.read.error = read_error;
            watch.write.error = write_error;
            for (tag, dir) in [(FD_READ, watch.read), (FD_WRITE, watch.write)] {
                if dir.owner != NONE {
                    self.set_error(dir.owner, dir.error);
                }
                if dir.extra > 0 {
                    let errno = if dir.error == 0 { EXIST.0 } else { dir.error };
                    duplicated.push(((fd, tag), dir.owner, errno));
                }
            }
            self.watches.insert(fd, watch);
        }
        if !duplicated.is_empty() {
            self.mark_duplicates(&duplicated);
        }
    }

    /// The subscriptions to each descriptor and direction other than its
    /// owner get `errno`: EEXIST when the owner's stands, else the owner's
    /// own error. WasmEdge checks the descriptor (EBADF, ENOTCAPABLE)
    /// before it looks for a duplicate, and forgets a registration epoll
    /// refused, so each copy of a failing subscription fails the same way.
    fn mark_duplicates(&mut self, duplicated: &[((u32, u8), u32, u16)]) {
        let owners: FxHashMap<(u32, u8), (u32, u16)> = (duplicated.iter())
            .map(|&(key, owner, errno)| (key, (owner, errno)))
            .collect();
        self.each_subscription_to(&owners, |poller, i, _, &(owner, errno)| {
            if i != owner {
                poller.set_error(i, errno);
            }
        });
    }

    pub(super) fn epoll_ctl(
        &self,
        op: i32,
        host_fd: RawFd,
        mask: u32,
        guest_fd: u32,
    ) -> Result<(), Errno> {
        let mut event = libc::epoll_event {
            events: mask,
            u64: guest_fd as u64,
        };
        // SAFETY: plain system call with a valid event pointer.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, host_fd, &mut event) };
        if r < 0 {
            Err(errno::last())
        } else {
            Ok(())
        }
    }
}

/// Listed by no subscription (parked if still registered in epoll).
pub(super) fn is_unlisted(watch: &Watch) -> bool {
    watch.read.owner == NONE
        && watch.write.owner == NONE
        && watch.read.extra == 0
        && watch.write.extra == 0
}
