//! A global allocator for single-threaded WebAssembly guests: small blocks
//! (up to 4 KiB) are kept on a free list per size class when freed and
//! handed out again at the cost of a pointer swap; everything else goes to
//! the system allocator.
//!
//! Why: `wasm32-wasip1`'s allocator is wasi-libc's dlmalloc, which spends
//! some two hundred Wasm instructions on each `malloc` and as many on each
//! `free`. A proxied request makes a few dozen small, short-lived
//! allocations (header names and values, a response head, output buffers),
//! and dlmalloc was a quarter of the guest's instructions per request. A
//! pop from a free list is a dozen.
//!
//! What it costs: a block is rounded up to its class (a power of two from
//! 16 bytes), and freed blocks are kept for reuse instead of going back to
//! dlmalloc, up to [`SmallBlockAlloc::keeping`] bytes per class (256 KiB by
//! default, so at most 2.25 MiB over the nine classes); blocks freed beyond
//! that go back. dlmalloc's heap in use is therefore the live blocks plus a
//! bounded cache, not a high-water mark (the linear memory under it, as
//! any WebAssembly memory, never shrinks). An allocation the system cannot
//! make gives the whole cache back first, and is tried once more.
//!
//! It is only `Sync` (and so only usable as `#[global_allocator]`) where a
//! guest has no threads: WebAssembly without the `atomics` feature, as
//! `wasm32-wasip1` is built. Elsewhere it is a plain value, for its tests.
//!
//! ```
//! # #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
//! #[global_allocator]
//! static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::new();
//! # fn main() {}
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// The smallest class is 16 bytes (1 << 4); there are nine, up to 4 KiB.
const MIN_SHIFT: u32 = 4;
const CLASSES: usize = 9;
/// The largest size served from a class.
const MAX_SMALL: usize = 1 << (MIN_SHIFT as usize + CLASSES - 1);
/// Every block is aligned to this; a layout asking more goes to the system.
const BLOCK_ALIGN: usize = 16;

/// A free block holds the next free block of its class.
struct FreeBlock {
    next: *mut FreeBlock,
}

#[derive(Clone, Copy)]
struct FreeList {
    head: *mut FreeBlock,
    /// How many blocks the list holds, against the class's limit.
    len: usize,
}

/// A size-class allocator for single-threaded WebAssembly guests: freed
/// blocks up to 4 KiB are kept per size class and handed out again for a
/// pointer swap; larger ones go to the system allocator (wasi-libc's
/// dlmalloc, which spends some two hundred Wasm instructions per call).
///
/// What it costs: a block is rounded up to its class (a power of two from
/// 16 bytes), and at most [`keeping`](Self::keeping) bytes of freed blocks
/// are kept per class (256 KiB, so 2.25 MiB over the nine, by default);
/// blocks freed beyond that go back. An allocation the system cannot make
/// gives the whole cache back first. It is `Sync`, and so usable as the
/// program's allocator, only where a guest has no threads (WebAssembly
/// without `atomics`, as `wasm32-wasip1` is built):
///
/// ```
/// # #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
/// #[global_allocator]
/// static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::new();
/// # fn main() {}
/// ```
pub struct SmallBlockAlloc {
    lists: UnsafeCell<[FreeList; CLASSES]>,
    keep_bytes: usize,
}

// SAFETY: only where a guest cannot start a thread, so `lists` is never
// touched from two threads.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for SmallBlockAlloc {}

impl SmallBlockAlloc {
    /// An allocator keeping up to 256 KiB of freed blocks per size class.
    pub const fn new() -> SmallBlockAlloc {
        SmallBlockAlloc::keeping(256 * 1024)
    }

    /// An allocator keeping up to `bytes` of freed blocks per size class
    /// (0: none, which makes it dlmalloc with rounded sizes).
    ///
    /// ```
    /// # #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    /// #[global_allocator]
    /// static ALLOC: edgepoll::SmallBlockAlloc = edgepoll::SmallBlockAlloc::keeping(64 * 1024);
    /// # fn main() {}
    /// ```
    pub const fn keeping(bytes: usize) -> SmallBlockAlloc {
        let empty = FreeList {
            head: std::ptr::null_mut(),
            len: 0,
        };
        SmallBlockAlloc {
            lists: UnsafeCell::new([empty; CLASSES]),
            keep_bytes: bytes,
        }
    }

    /// How many freed blocks `class` keeps.
    fn keep(&self, class: usize) -> usize {
        self.keep_bytes >> (MIN_SHIFT as usize + class)
    }
}

impl Default for SmallBlockAlloc {
    fn default() -> Self {
        SmallBlockAlloc::new()
    }
}

/// The class serving `layout`, if a class does: its size rounded up to a
/// power of two, counted from 16 bytes.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_SMALL || layout.align() > BLOCK_ALIGN {
        return None;
    }
    let size = layout.size().max(1 << MIN_SHIFT);
    let ceil_log2 = usize::BITS - (size - 1).leading_zeros();
    Some((ceil_log2 - MIN_SHIFT) as usize)
}

/// The layout in which a block of `class` is taken from the system.
fn block_layout(class: usize) -> Layout {
    // A power of two from 16 to 4096 with align 16 is always a valid layout.
    Layout::from_size_align(1 << (MIN_SHIFT as usize + class), BLOCK_ALIGN)
        .unwrap_or(Layout::new::<FreeBlock>())
}

impl SmallBlockAlloc {
    /// The system's allocation, out of line: the common path (a pop from a
    /// free list) then needs no stack frame of its own. If the system has
    /// no room, the cached blocks go back to it first (near a memory
    /// limit, they may be what it lacks).
    #[cold]
    #[inline(never)]
    unsafe fn system_alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            return ptr;
        }
        self.release_cached();
        System.alloc(layout)
    }

    /// Gives every cached block back to the system.
    ///
    /// # Safety
    /// No reference to the lists is alive (one thread, see `Sync`).
    unsafe fn release_cached(&self) {
        let lists = &mut *self.lists.get();
        for (class, list) in lists.iter_mut().enumerate() {
            while !list.head.is_null() {
                let block = list.head;
                list.head = (*block).next;
                // Every cached block was taken in its class's layout.
                System.dealloc(block.cast(), block_layout(class));
            }
            list.len = 0;
        }
    }
}

impl Drop for SmallBlockAlloc {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nothing else refers to the lists.
        unsafe { self.release_cached() }
    }
}

unsafe impl GlobalAlloc for SmallBlockAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return self.system_alloc(layout);
        };
        // SAFETY: one thread (see `Sync`), and no reference to the lists
        // outlives this call.
        let list = &mut (*self.lists.get())[class];
        let block = list.head;
        if block.is_null() {
            return self.system_alloc(block_layout(class));
        }
        list.head = (*block).next;
        list.len -= 1;
        block.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            return System.dealloc(ptr, layout);
        };
        let list = &mut (*self.lists.get())[class];
        if list.len >= self.keep(class) {
            return System.dealloc(ptr, block_layout(class));
        }
        let block: *mut FreeBlock = ptr.cast();
        (*block).next = list.head;
        list.head = block;
        list.len += 1;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            // The system may know its fresh pages are zero already. Short
            // of memory, the cache goes back first, as in `system_alloc`.
            let ptr = System.alloc_zeroed(layout);
            if !ptr.is_null() {
                return ptr;
            }
            self.release_cached();
            return System.alloc_zeroed(layout);
        }
        let ptr = self.alloc(layout);
        if !ptr.is_null() {
            std::ptr::write_bytes(ptr, 0, layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(layout), class_of(new_layout)) {
            // A growing `Vec` often stays within its block.
            (Some(old), Some(new)) if old == new => ptr,
            (None, None) => {
                let moved = System.realloc(ptr, layout, new_size);
                if !moved.is_null() {
                    return moved;
                }
                // Failed, the block is untouched: the cache goes back, and
                // the system is asked once more.
                self.release_cached();
                System.realloc(ptr, layout, new_size)
            }
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_fall_in_the_smallest_power_of_two_class_that_holds_them() {
        assert_eq!(class_of(layout(1, 1)), Some(0));
        assert_eq!(class_of(layout(16, 8)), Some(0));
        assert_eq!(class_of(layout(17, 8)), Some(1));
        assert_eq!(class_of(layout(100, 4)), Some(3));
        assert_eq!(class_of(layout(4096, 16)), Some(8));
        assert_eq!(class_of(layout(4097, 1)), None);
        assert_eq!(class_of(layout(8, 32)), None);
        for size in 1..=MAX_SMALL {
            let class = class_of(layout(size, 1)).unwrap();
            assert!(block_layout(class).size() >= size);
            assert!(class == 0 || block_layout(class - 1).size() < size);
        }
    }

    /// What the cache holds goes back to the system when the system runs
    /// short, and when a heap (not the global one) is dropped.
    #[test]
    fn cached_blocks_go_back_when_released() {
        let heap = SmallBlockAlloc::new();
        let l = layout(100, 8);
        // SAFETY: blocks allocated here, freed once, in their layout.
        unsafe {
            let blocks: Vec<*mut u8> = (0..4).map(|_| heap.alloc(l)).collect();
            for block in blocks {
                heap.dealloc(block, l);
            }
            assert_eq!((*heap.lists.get())[3].len, 4);
            heap.release_cached();
            let lists = &*heap.lists.get();
            assert!(lists
                .iter()
                .all(|list| list.len == 0 && list.head.is_null()));
            // Still serves, from the system now.
            let again = heap.alloc(l);
            assert!(!again.is_null());
            heap.dealloc(again, l);
        }
    }

    #[test]
    fn a_freed_block_is_handed_out_again_for_its_class() {
        let heap = SmallBlockAlloc::new();
        unsafe {
            let a = heap.alloc(layout(24, 8));
            a.write_bytes(0xab, 24);
            heap.dealloc(a, layout(24, 8));
            // 30 bytes is the same 32-byte class; 12 is not.
            let b = heap.alloc(layout(30, 2));
            assert_eq!(a, b);
            let c = heap.alloc(layout(12, 4));
            assert_ne!(c, b);
            heap.dealloc(b, layout(30, 2));
            heap.dealloc(c, layout(12, 4));
        }
    }

    #[test]
    fn no_more_than_the_limit_is_kept_per_class() {
        // 64 bytes per class: four 16-byte blocks, one 64-byte block.
        let heap = SmallBlockAlloc::keeping(64);
        let l16 = layout(16, 8);
        unsafe {
            let blocks: Vec<*mut u8> = (0..6).map(|_| heap.alloc(l16)).collect();
            for &b in &blocks {
                heap.dealloc(b, l16);
            }
            assert_eq!((*heap.lists.get())[0].len, 4);
            let l64 = layout(64, 8);
            let (x, y) = (heap.alloc(l64), heap.alloc(l64));
            heap.dealloc(x, l64);
            heap.dealloc(y, l64);
            assert_eq!((*heap.lists.get())[2].len, 1);
            for _ in 0..4 {
                heap.alloc(l16);
            }
            assert_eq!((*heap.lists.get())[0].len, 0);
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_within_a_class_across_classes_and_to_the_system() {
        let heap = SmallBlockAlloc::new();
        unsafe {
            let l = layout(5, 1);
            let p = heap.alloc(l);
            p.copy_from_nonoverlapping(b"hello".as_ptr(), 5);
            // Within the 16-byte class: the same block.
            let q = heap.realloc(p, l, 16);
            assert_eq!(p, q);
            // Out to 100 bytes (class 128), then past 4 KiB (the system's),
            // then back down into a class.
            let r = heap.realloc(q, layout(16, 1), 100);
            assert_eq!(std::slice::from_raw_parts(r, 5), b"hello");
            r.add(99).write(7);
            let s = heap.realloc(r, layout(100, 1), 10_000);
            assert_eq!(std::slice::from_raw_parts(s, 5), b"hello");
            assert_eq!(s.add(99).read(), 7);
            let t = heap.realloc(s, layout(10_000, 1), 20);
            assert_eq!(std::slice::from_raw_parts(t, 5), b"hello");
            heap.dealloc(t, layout(20, 1));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_reused() {
        let heap = SmallBlockAlloc::new();
        unsafe {
            let l = layout(48, 8);
            let p = heap.alloc(l);
            p.write_bytes(0xff, 48);
            heap.dealloc(p, l);
            let q = heap.alloc_zeroed(l);
            assert_eq!(p, q);
            assert!(std::slice::from_raw_parts(q, 48).iter().all(|&b| b == 0));
            heap.dealloc(q, l);
            let big = layout(8192, 8);
            let z = heap.alloc_zeroed(big);
            assert!(std::slice::from_raw_parts(z, 8192).iter().all(|&b| b == 0));
            heap.dealloc(z, big);
        }
    }

    #[test]
    fn alignment_asked_is_alignment_given() {
        let heap = SmallBlockAlloc::new();
        unsafe {
            for (size, align) in [(1, 1), (8, 8), (24, 16), (16, 64), (4096, 4096)] {
                let l = layout(size, align);
                let p = heap.alloc(l);
                assert_eq!(p as usize % align, 0, "{size} aligned to {align}");
                heap.dealloc(p, l);
            }
        }
    }
}
