//! The unit tests' allocator: the system's, noting the largest single
//! allocation each thread makes, so that a test can show that hostile
//! input does not make the code reserve memory in proportion to what the
//! input claims, and failing a thread's large allocations on demand, or
//! those past a budget of bytes held, so that a test can show memory
//! running out is answered, not an abort.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct NotingLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Allocations of this many bytes or more fail (`usize::MAX`: none).
    static FAIL_FROM: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Bytes the thread may hold more than it did when the budget was set
    /// (`isize::MAX`: no budget), and how many more it holds now.
    static BUDGET: Cell<isize> = const { Cell::new(isize::MAX) };
    static HELD: Cell<isize> = const { Cell::new(0) };
}

/// Whether growing what the thread holds by `more` bytes (an allocation of
/// `size`) fails; if not, it is counted.
fn fails(size: usize, more: isize) -> bool {
    let too_large = FAIL_FROM
        .try_with(|from| size >= from.get())
        .unwrap_or(false);
    too_large || !hold(more)
}

/// Counts `more` bytes held (fewer where negative); false, and nothing
/// counted, when that goes past the budget.
fn hold(more: isize) -> bool {
    let (Ok(budget), Ok(held)) = (BUDGET.try_with(Cell::get), HELD.try_with(Cell::get)) else {
        return true;
    };
    let now = held.saturating_add(more);
    if more > 0 && now > budget {
        return false;
    }
    let _ = HELD.try_with(|h| h.set(now));
    true
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call goes to the system allocator unchanged, or fails as
// an allocator may (null, the old block untouched).
unsafe impl GlobalAlloc for NotingLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if fails(layout.size(), layout.size() as isize) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if fails(layout.size(), layout.size() as isize) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        hold(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        let more = new_size as isize - layout.size() as isize;
        if fails(new_size, more) {
            return std::ptr::null_mut();
        }
        let grown = unsafe { System.realloc(ptr, layout, new_size) };
        if grown.is_null() {
            hold(-more);
        }
        grown
    }
}

#[global_allocator]
static ALLOC: NotingLargest = NotingLargest;

/// The largest allocation this thread made while `f` ran.
pub fn largest_allocation_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LARGEST.with(|largest| largest.replace(0));
    let out = f();
    let largest = LARGEST.with(|largest| largest.replace(before.max(largest.get())));
    (out, largest)
}

/// Runs `f` with this thread's allocations of `size` bytes or more failing,
/// as they do when a runtime's memory limit is reached.
pub fn with_allocations_failing_from<T>(size: usize, f: impl FnOnce() -> T) -> T {
    /// Puts the bound back however `f` ends: a panic's own allocations
    /// must not fail.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = FAIL_FROM.try_with(|from| from.set(self.0));
        }
    }
    let _restore = Restore(FAIL_FROM.with(|from| from.replace(size)));
    f()
}

/// Runs `f` with this thread allowed to hold at most `bytes` more than it
/// does now: an allocation past that fails, as under a runtime's memory
/// limit (where an infallible one aborts the process: here the test's).
/// Freed memory counts, even memory allocated before the call.
///
/// An infallible allocation failing can also hang instead: with
/// `RUST_BACKTRACE` set, std's report of it allocates under a lock, fails
/// again and waits for that lock. So a watchdog aborts the process, saying
/// why, if `f` has not returned within a minute.
pub fn with_memory_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    /// Puts the budget back however `f` ends: a panic's own allocations
    /// must not fail.
    struct Restore(isize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = BUDGET.try_with(|budget| budget.set(self.0));
        }
    }
    // Dropped in the reverse order: the budget put back, then the watch.
    let _watchdog = Watchdog::start();
    let held = HELD.with(Cell::get);
    let budget = held.saturating_add(isize::try_from(bytes).unwrap_or(isize::MAX));
    let _restore = Restore(BUDGET.with(|b| b.replace(budget)));
    f()
}

/// Aborts the process if not dropped within a minute. Only where threads
/// are: a WebAssembly guest has none (nor the backtrace that hangs).
#[cfg(not(target_family = "wasm"))]
struct Watchdog(Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>);

#[cfg(not(target_family = "wasm"))]
impl Watchdog {
    fn start() -> Self {
        let (done, watched) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let waited = watched.recv_timeout(std::time::Duration::from_secs(60));
            if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                eprintln!("a test under a memory budget hung: an allocation failed that could not");
                std::process::abort();
            }
        });
        Watchdog(Some((done, thread)))
    }
}

#[cfg(not(target_family = "wasm"))]
impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some((done, thread)) = self.0.take() {
            drop(done);
            let _ = thread.join();
        }
    }
}

#[cfg(target_family = "wasm")]
struct Watchdog;

#[cfg(target_family = "wasm")]
impl Watchdog {
    fn start() -> Self {
        Watchdog
    }
}
