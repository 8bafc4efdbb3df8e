//! The unit tests' allocator: the system's, noting the largest single
//! allocation each thread makes, so that a test can show that hostile
//! input does not make the code reserve memory in proportion to what the
//! input claims, and failing a thread's large allocations on demand, so
//! that a test can show memory running out is answered, not an abort.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct NotingLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Allocations of this many bytes or more fail (`usize::MAX`: none).
    static FAIL_FROM: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn fails(size: usize) -> bool {
    FAIL_FROM
        .try_with(|from| size >= from.get())
        .unwrap_or(false)
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call goes to the system allocator unchanged, or fails as
// an allocator may (null, the old block untouched).
unsafe impl GlobalAlloc for NotingLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if fails(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if fails(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if fails(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
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
