//! A guest's stdout and stderr when several instances of it run
//! (`--instances`): each line goes out whole, tagged with the instance's
//! number (`[1] listening on ...`), so that the instances' lines neither
//! interleave mid-line nor leave a reader guessing whose they are.

use crate::errno::Errno;
use crate::fd_table::{rights, Entry, FdTable};
use crate::memory::GuestMemory;

/// A line longer than this is written out in pieces of this length.
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
    /// either and the guest may still write it (a guest may close them,
    /// give up their right to be written, or renumber others onto 1 and 2:
    /// then the write takes the plain path, which says why it cannot).
    pub fn stream_of(fds: &FdTable, fd: u32) -> Option<usize> {
        let d = fds.get(fd).ok()?;
        match d.entry {
            Entry::Stdio(1) if d.can(rights::FD_WRITE) => Some(0),
            Entry::Stdio(2) if d.can(rights::FD_WRITE) => Some(1),
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
        let host_fd = 1 + stream as i32;
        let mut taken = 0u32;
        // Read where they lie: the host holds at most one line.
        for bytes in mem.iovec_slices(table)? {
            self.take(stream, bytes, |line| emit(host_fd, line));
            taken += bytes.len() as u32;
        }
        mem.write_u32(out, taken)
    }

    /// Cuts `bytes` into lines after what `stream` has pending: each line
    /// completed, or grown past [`MAX_LINE`] without an end (then cut after
    /// MAX_LINE bytes and ended there), goes to `emit` as its parts (tag,
    /// pending, the rest), and what is left waits. Linear in `bytes`, and never holding more than one
    /// line, however much comes in one write.
    fn take(&mut self, stream: usize, mut bytes: &[u8], mut emit: impl FnMut(&[&[u8]])) {
        let pending = &mut self.pending[stream];
        while !bytes.is_empty() {
            let room = MAX_LINE - pending.len();
            // A line of exactly MAX_LINE bytes ends with the byte after it.
            let window = &bytes[..bytes.len().min(room + 1)];
            match window.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    emit(&[&self.tag, pending, &window[..=end]]);
                    pending.clear();
                    bytes = &bytes[end + 1..];
                }
                // Full, and the next byte does not end it: cut here.
                None if room == 0 => {
                    emit(&[&self.tag, pending, b"\n"]);
                    pending.clear();
                }
                None => {
                    let window = &window[..window.len().min(room)];
                    let needed = pending.len() + window.len();
                    if needed > pending.capacity() {
                        // Doubling, but never past a line's most.
                        let grown = needed.max(2 * pending.capacity()).min(MAX_LINE);
                        pending.reserve_exact(grown - pending.len());
                    }
                    pending.extend_from_slice(window);
                    bytes = &bytes[window.len()..];
                }
            }
        }
        if pending.is_empty() && pending.capacity() > 4096 {
            // A long line is done with: its buffer is not kept.
            *pending = Vec::new();
        }
    }

    /// What is left of unfinished lines, written when the instance ends.
    pub fn flush(&mut self) {
        for (stream, pending) in self.pending.iter_mut().enumerate() {
            if !pending.is_empty() {
                emit(1 + stream as i32, &[&self.tag, pending, b"\n"]);
                pending.clear();
            }
        }
    }
}

/// A line the runtime writes for the guest (the `wasi:logging` plugin's) to
/// stdout (1) or stderr (2), from its parts, which may lie in the guest's
/// memory (none is copied whole: a guest may pass gigabytes): tagged, after
/// what the guest left unfinished there, under `--instances`, else written
/// whole.
pub fn write_line(tagged: Option<&mut Tagged>, host_fd: i32, line: &[&[u8]]) {
    match tagged {
        Some(tagged) => {
            let stream = (host_fd - 1) as usize;
            for part in line {
                tagged.take(stream, part, |parts| emit(host_fd, parts));
            }
        }
        None => emit(host_fd, line),
    }
}

/// Instances are threads of one process: one line at a time goes out on
/// each of stdout and stderr, so that no line of one splits another's,
/// however long (the kernel keeps only writes of up to 4 KiB to a pipe
/// whole). A turn for each: a stdout nobody reads holds up no stderr line
/// (WasmEdge's processes, one per core, would go on writing it). One turn
/// for both when they are one file (`2>&1`), whose lines would split.
static WRITING: [std::sync::Mutex<()>; 2] = [std::sync::Mutex::new(()), std::sync::Mutex::new(())];

/// The turn for writing to `host_fd` (1 or 2).
fn turn_of(host_fd: i32) -> &'static std::sync::Mutex<()> {
    static ONE_FILE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let one_file = *ONE_FILE.get_or_init(|| same_file(1, 2));
    match (host_fd, one_file) {
        (2, false) => &WRITING[1],
        _ => &WRITING[0],
    }
}

/// Whether two descriptors are the same file (a descriptor that cannot be
/// looked at counts as the same: one turn is always safe).
fn same_file(a: i32, b: i32) -> bool {
    let stat = |fd: i32| {
        // SAFETY: zeroed stat is valid; fstat writes one record.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    match (stat(a), stat(b)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// One line of the host's own on stderr (`edgepoll-host: ...`): never a
/// panic, as `eprintln!` is on a stderr that is closed or full, and never a
/// wait for the instances' turn to write (one blocked on a full stdout holds
/// it), either of which would leave the supervisor unable to stop. Between
/// the instances' lines when the turn is free; in one write, which a pipe
/// keeps whole for a line under 4 KiB; dropped if stderr takes none of it.
pub fn say(line: &str) {
    let whole = [b"edgepoll-host: ", line.as_bytes(), b"\n"].concat();
    let _turn = match turn_of(2).try_lock() {
        Ok(turn) => Some(turn),
        Err(std::sync::TryLockError::Poisoned(turn)) => Some(turn.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    loop {
        // SAFETY: `whole` is a live buffer of `whole.len()` bytes.
        let n = unsafe { libc::write(2, whole.as_ptr().cast(), whole.len()) };
        let interrupted =
            n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
        if !interrupted {
            return;
        }
    }
}

/// One tagged line, whole, from its parts (at most [`MOST_PARTS`]).
fn emit(host_fd: i32, parts: &[&[u8]]) {
    let _turn = turn_of(host_fd)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    write_all(host_fd, parts);
}

/// The most parts a line is written from: a tag, what was pending, the
/// rest; or a line's start, its message and its end.
const MOST_PARTS: usize = 3;

/// Writes all of `parts`, in one `writev` when the descriptor takes it (a
/// pipe keeps a write of up to 4 KiB whole), waiting while `host_fd` is
/// full: a non-blocking stdout (a pipe another process set so) must not
/// lose lines. More than [`MOST_PARTS`] go in turn.
fn write_all(host_fd: i32, parts: &[&[u8]]) {
    debug_assert!(parts.len() <= MOST_PARTS, "a line of {} parts", parts.len());
    if parts.len() > MOST_PARTS {
        let turns = parts.chunks(MOST_PARTS);
        return turns.for_each(|some| write_all(host_fd, some));
    }
    let mut left = [&[][..]; MOST_PARTS];
    let mut count = 0;
    for part in parts.iter().filter(|part| !part.is_empty()) {
        left[count] = part;
        count += 1;
    }
    let mut first = 0;
    while first < count {
        let iov = left.map(|part| libc::iovec {
            iov_base: part.as_ptr().cast_mut().cast(),
            iov_len: part.len(),
        });
        let iov = &iov[first..count];
        // SAFETY: each iovec is a live buffer of its length, only read.
        let n = unsafe { libc::writev(host_fd, iov.as_ptr(), iov.len() as libc::c_int) };
        if n > 0 {
            let mut n = n as usize;
            while n > 0 {
                let taken = n.min(left[first].len());
                left[first] = &left[first][taken..];
                n -= taken;
                if left[first].is_empty() {
                    first += 1;
                }
            }
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) if n < 0 => {}
            Some(libc::EAGAIN) if n < 0 => {
                let mut ready = libc::pollfd {
                    fd: host_fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut ready, 1, -1) };
            }
            // stdout gone (a closed pipe): the guest goes on regardless, as
            // it would if the runtime had no tags.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two descriptors of one file share a turn; of two files, not.
    #[test]
    fn one_file_is_told_from_two() {
        let dir = std::env::temp_dir().join(format!("edgepoll-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let a = std::fs::File::create(dir.join("a")).expect("a file");
        let b = std::fs::File::create(dir.join("b")).expect("a file");
        let a2 = a.try_clone().expect("dup");
        use std::os::fd::AsRawFd;
        assert!(same_file(a.as_raw_fd(), a2.as_raw_fd()));
        assert!(!same_file(a.as_raw_fd(), b.as_raw_fd()));
        assert!(same_file(a.as_raw_fd(), -1), "unknown: one turn");
        let _ = std::fs::remove_dir_all(&dir);
    }
    use std::io::Read;
    use std::os::fd::FromRawFd;

    /// A pipe whose write end is non-blocking and holds one page.
    fn small_nonblocking_pipe() -> (std::fs::File, i32) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fds[1] is the pipe's write end, just made.
        unsafe {
            libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 4096);
            libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK);
        }
        // SAFETY: fds[0] is ours alone.
        (unsafe { std::fs::File::from_raw_fd(fds[0]) }, fds[1])
    }

    #[test]
    fn stdout_given_up_for_writing_is_not_taken_as_tagged_output() {
        let mut fds = FdTable::with_stdio(1);
        assert_eq!(Tagged::stream_of(&fds, 1), Some(0));
        assert_eq!(Tagged::stream_of(&fds, 2), Some(1));
        assert_eq!(Tagged::stream_of(&fds, 0), None, "stdin");
        let keep = rights::STDOUT & !rights::FD_WRITE;
        assert!(crate::wasi::fd::fdstat_set_rights(&mut fds, 1, keep, 0).is_ok());
        // The plain path then answers NOTCAPABLE, as WasmEdge does.
        assert_eq!(Tagged::stream_of(&fds, 1), None);
        assert_eq!(Tagged::stream_of(&fds, 2), Some(1));
    }

    #[test]
    fn long_lines_of_four_instances_arrive_whole_through_a_full_non_blocking_pipe() {
        let (mut reader, writer) = small_nonblocking_pipe();
        const LINE: usize = 40_000;
        const LINES: usize = 8;
        const LETTERS: [u8; 4] = *b"abcd";
        let emitters: Vec<_> = LETTERS
            .into_iter()
            .map(|letter| {
                std::thread::spawn(move || {
                    let mut line = vec![letter; LINE];
                    line.push(b'\n');
                    for _ in 0..LINES {
                        // An empty middle part, as a tagged line with
                        // nothing pending has.
                        emit(writer, &[&[b'[', letter, b']', b' '], b"", &line]);
                    }
                })
            })
            .collect();
        // The pipe closes once every line went (or was given up): the
        // reader below ends either way.
        let closer = std::thread::spawn(move || {
            for emitter in emitters {
                emitter.join().expect("emitter");
            }
            // SAFETY: the write end is ours and no longer used.
            unsafe { libc::close(writer) };
        });
        let mut received = Vec::new();
        let mut buf = [0; 1000];
        loop {
            // Slowly, so that the writers find the pipe full.
            std::thread::sleep(std::time::Duration::from_micros(20));
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the pipe: {e}"),
            }
        }
        closer.join().expect("closer");
        let lines: Vec<&[u8]> = received
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            received.len(),
            LETTERS.len() * LINES * (4 + LINE + 1),
            "bytes lost"
        );
        assert_eq!(lines.len(), LETTERS.len() * LINES);
        for line in lines {
            let letter = line[1];
            assert_eq!(&line[..4], &[b'[', letter, b']', b' ']);
            assert!(
                line[4..].iter().all(|&b| b == letter),
                "a line split by another"
            );
        }
    }

    /// However a write is cut and however long its lines, every byte comes
    /// out once, in order, in lines of at most MAX_LINE (plus the tag and
    /// the end added to a cut one), and the host holds no more than a line.
    #[test]
    fn lines_are_cut_as_they_come_and_nothing_is_held_but_one_line() {
        let mut input = Vec::new();
        input.extend_from_slice(b"short\n");
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE + 5));
        input.extend_from_slice(b"\n\n\nend");
        input.extend(std::iter::repeat_n(b'\n', 10_000));
        // A line of exactly MAX_LINE bytes: one line, not cut.
        input.extend(std::iter::repeat_n(b'y', MAX_LINE));
        input.push(b'\n');
        for piece in [1, 7, 4096, MAX_LINE + 3, input.len()] {
            let mut tagged = Tagged::new(3);
            let mut lines: Vec<Vec<u8>> = Vec::new();
            for bytes in input.chunks(piece) {
                tagged.take(0, bytes, |parts| lines.push(parts.concat()));
                assert!(tagged.pending[0].capacity() <= MAX_LINE, "piece {piece}");
            }
            let mut text = Vec::new();
            for line in &lines {
                assert!(
                    line.starts_with(b"[3] ") && line.ends_with(b"\n"),
                    "piece {piece}"
                );
                assert!(
                    line.len() <= 4 + MAX_LINE + 1,
                    "piece {piece}: {}",
                    line.len()
                );
                text.extend_from_slice(&line[4..]);
            }
            // The three cuts of the long line each added an end.
            let mut want = b"short\n".to_vec();
            for _ in 0..3 {
                want.extend(std::iter::repeat_n(b'x', MAX_LINE));
                want.push(b'\n');
            }
            want.extend_from_slice(b"xxxxx\n\n\nend");
            want.extend(std::iter::repeat_n(b'\n', 10_000));
            want.extend(std::iter::repeat_n(b'y', MAX_LINE));
            want.push(b'\n');
            assert_eq!(text.len(), want.len(), "piece {piece}");
            assert!(text == want, "piece {piece}");
            assert!(tagged.pending[0].is_empty(), "piece {piece}");
        }
    }
}
