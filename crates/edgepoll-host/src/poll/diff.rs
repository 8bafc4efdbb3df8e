//! Keeping up with the guest's subscription list: each call's list is
//! compared with the previous one, and only the records that changed are
//! detached and attached (which descriptor and direction each watches,
//! which subscription owns it, which are duplicates or invalid).

use super::*;

impl Poller {
    /// Diffs the new list against the previous one: every changed or dropped
    /// record is detached first, then the new ones attached, so records that
    /// only moved are never seen as duplicates.
    pub(super) fn apply_changes(&mut self, subs: &[u8]) {
        let new_len = subs.len() / SUB_SIZE;
        let old_len = self.prev.len() / SUB_SIZE;
        let mut changed = std::mem::take(&mut self.changed);
        changed.clear();
        for i in 0..old_len {
            let old = &self.prev[i * SUB_SIZE..(i + 1) * SUB_SIZE];
            if i >= new_len || old != &subs[i * SUB_SIZE..(i + 1) * SUB_SIZE] {
                self.detach(i as u32, record(old));
                if i < new_len {
                    changed.push(i as u32);
                }
            }
        }
        changed.extend(old_len as u32..new_len as u32);
        self.sub_error.resize(new_len, 0);
        for &i in &changed {
            let at = i as usize * SUB_SIZE;
            self.attach(i, record(&subs[at..at + SUB_SIZE]));
        }
        self.changed = changed;
        self.prev.clear();
        self.prev.extend_from_slice(subs);
        if !self.reelect.is_empty() {
            self.elect_all();
        }
    }

    /// Calls `each` with the index and key (descriptor and direction) of
    /// every subscription in the list whose key `keys` has, in list order, in
    /// one pass over the list: a guest listing many descriptors twice costs
    /// O(list), not O(list) per descriptor, and one listing a descriptor
    /// millions of times costs no memory per copy. The list is out of
    /// `self` meanwhile: `each` gets what it needs of it as arguments.
    pub(super) fn each_subscription_to<V>(
        &mut self,
        keys: &FxHashMap<(u32, u8), V>,
        mut each: impl FnMut(&mut Self, u32, (u32, u8), &V),
    ) {
        let list = std::mem::take(&mut self.prev);
        for (i, chunk) in list.chunks_exact(SUB_SIZE).enumerate() {
            let r = record(chunk);
            if let Some(value) = keys.get(&(r.fd, r.tag)) {
                each(self, i as u32, (r.fd, r.tag), value);
            }
        }
        self.prev = list;
    }

    pub(super) fn set_error(&mut self, index: u32, errno: u16) {
        let e = &mut self.sub_error[index as usize];
        match (*e, errno) {
            (0, 0) => {}
            (0, _) => self.errored += 1,
            (_, 0) => self.errored -= 1,
            _ => {}
        }
        *e = errno;
    }

    pub(super) fn mark_dirty(&mut self, fd: u32) {
        if let Some(watch) = self.watches.get_mut(&fd) {
            if !watch.dirty {
                watch.dirty = true;
                self.dirty.push(fd);
            }
        }
    }

    pub(super) fn detach(&mut self, index: u32, sub: Record) {
        if (index as usize) < self.sub_error.len() {
            self.set_error(index, 0);
        }
        match sub.tag {
            CLOCK => {
                self.clocks.remove(&index);
            }
            FD_READ | FD_WRITE => {
                let Some(watch) = self.watches.get_mut(&sub.fd) else {
                    return;
                };
                let dir = watch.direction(sub.tag);
                if dir.owner != index {
                    dir.extra = dir.extra.saturating_sub(1);
                    return;
                }
                dir.owner = NONE;
                if dir.extra > 0 {
                    self.reelect.push((sub.fd, sub.tag));
                }
                self.mark_dirty(sub.fd);
            }
            _ => {}
        }
    }

    pub(super) fn attach(&mut self, index: u32, sub: Record) {
        match sub.tag {
            CLOCK => {
                self.clocks.insert(index);
                // WasmEdge: an unknown clock id or flag is EINVAL, and so are
                // the CPU-time clocks its timerfd cannot arm.
                let valid = sub.clock_id <= clock::MONOTONIC && sub.flags & !ABSTIME == 0;
                if !valid {
                    self.set_error(index, INVAL.0);
                }
            }
            FD_READ | FD_WRITE => {
                let watch = self.watches.entry(sub.fd).or_insert(UNWATCHED);
                let dir = watch.direction(sub.tag);
                let duplicate = if dir.owner == NONE {
                    dir.owner = index;
                    None
                } else if index < dir.owner {
                    let displaced = dir.owner;
                    dir.owner = index;
                    dir.extra += 1;
                    Some(displaced)
                } else {
                    dir.extra += 1;
                    Some(index)
                };
                if let Some(duplicate) = duplicate {
                    self.set_error(duplicate, EXIST.0);
                }
                self.mark_dirty(sub.fd);
            }
            _ => self.set_error(index, INVAL.0),
        }
    }

    /// Where the owner of a descriptor's subscriptions in one direction left
    /// while duplicates remain (`reelect`): the lowest-numbered one takes
    /// over, as in WasmEdge's list order, and the others are duplicates.
    fn elect_all(&mut self) {
        let mut keys = std::mem::take(&mut self.reelect);
        keys.retain(|(fd, _)| self.watches.contains_key(fd));
        let keys: FxHashMap<(u32, u8), ()> = keys.into_iter().map(|key| (key, ())).collect();
        // The first subscription to each key, and how many there are.
        let mut found: FxHashMap<(u32, u8), (u32, u32)> = FxHashMap::default();
        self.each_subscription_to(&keys, |poller, i, key, ()| {
            let (first, count) = found.entry(key).or_insert((i, 0));
            *count += 1;
            poller.set_error(i, if *first == i { 0 } else { EXIST.0 });
        });
        for &(fd, tag) in keys.keys() {
            let Some(watch) = self.watches.get_mut(&fd) else {
                continue;
            };
            let dir = watch.direction(tag);
            let (first, count) = found.get(&(fd, tag)).copied().unwrap_or((NONE, 0));
            dir.owner = first;
            dir.extra = count.saturating_sub(1);
            self.mark_dirty(fd);
        }
    }

    pub(super) fn record_at(&self, index: u32) -> Record {
        let at = index as usize * SUB_SIZE;
        record(&self.prev[at..at + SUB_SIZE])
    }
}

/// The fields of one subscription record that matter here.
#[derive(Clone, Copy)]
pub(super) struct Record {
    pub(super) userdata: u64,
    pub(super) tag: u8,
    pub(super) fd: u32,
    pub(super) clock_id: u32,
    pub(super) timeout: u64,
    pub(super) flags: u16,
}

pub(super) fn record(bytes: &[u8]) -> Record {
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let u64_at = |i: usize| u64::from(u32_at(i)) | (u64::from(u32_at(i + 4)) << 32);
    Record {
        userdata: u64_at(0),
        tag: bytes[8],
        fd: u32_at(16),
        clock_id: u32_at(16),
        timeout: u64_at(24),
        flags: u16::from_le_bytes([bytes[40], bytes[41]]),
    }
}
