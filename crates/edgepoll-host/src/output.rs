//! A guest's stdout and stderr when several instances of it run
//! (`--instances`): each line goes out whole, tagged with the instance's
//! number (`[1] listening on ...`), so that the instances' lines neither
//! interleave mid-line nor leave a reader guessing whose they are.

use crate::errno::Errno;
use crate::fd_table::{Entry, FdTable};
use crate::memory::GuestMemory;

/// A partial line is written out anyway once it is this long.
const MAX_LINE: usize = 64 * 1024;

/// The instance's number and its unfinished lines (stdout, stderr).
pub struct Tagged {
    tag: Vec<u8>,
    pending: [Vec<u8>; 2],
}

impl Tagged {
    pub fn new(number: usize) -> Tagged {
        Tagged {
            tag: format!("[{number}] ").into_bytes(),
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Which of stdout (0) and stderr (1) guest descriptor `fd` is, if
    /// either (a guest may close them, or renumber others onto 1 and 2).
    pub fn stream_of(fds: &FdTable, fd: u32) -> Option<usize> {
        match fds.get(fd).map(|d| &d.entry) {
            Ok(Entry::Stdio(1)) => Some(0),
            Ok(Entry::Stdio(2)) => Some(1),
            _ => None,
        }
    }

    /// `fd_write` to stream `stream` (see [`stream_of`](Self::stream_of)):
    /// what completes lines goes out tagged, the rest waits for its line's
    /// end. Reports every byte taken, as a terminal would.
    pub fn write(
        &mut self,
        mem: &mut GuestMemory<'_>,
        stream: usize,
        iovs: u32,
        count: u32,
        out: u32,
    ) -> Result<(), Errno> {
        let table = mem.iovec_table(iovs, count)?;
        mem.pointer::<4>(out)?;
        let pending = &mut self.pending[stream];
        let taken = mem.copy_iovecs(table, pending)?;
        let host_fd = 1 + stream as i32;
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            emit(host_fd, &self.tag, &line);
        }
        if pending.len() >= MAX_LINE {
            let mut line = std::mem::take(pending);
            line.push(b'\n');
            emit(host_fd, &self.tag, &line);
        }
        mem.write_u32(out, taken)
    }

    /// What is left of unfinished lines, written when the instance ends.
    pub fn flush(&mut self) {
        for (stream, pending) in self.pending.iter_mut().enumerate() {
            if !pending.is_empty() {
                let mut line = std::mem::take(pending);
                line.push(b'\n');
                emit(1 + stream as i32, &self.tag, &line);
            }
        }
    }
}

/// One tagged line in one write (lines of other instances cannot split it:
/// a write of a few KiB to a pipe or terminal goes whole).
fn emit(host_fd: i32, tag: &[u8], line: &[u8]) {
    let whole = [tag, line].concat();
    let mut rest = &whole[..];
    while !rest.is_empty() {
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
        let n = unsafe { libc::write(host_fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            // stdout gone (a closed pipe): the guest goes on regardless, as
            // it would if the runtime had no tags.
            return;
        }
        rest = &rest[n as usize..];
    }
}
