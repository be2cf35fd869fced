//! A bump allocator over memory the module grows on demand (`feature = "alloc"`,
//! wasm32 only). It never frees: fine for an agent whose instance lives for one call.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The allocator. The SDK installs it as the global allocator when `alloc` is on; use
/// `alloc` as usual:
///
/// ```ignore
/// extern crate alloc;
/// let v: alloc::vec::Vec<u8> = alloc::vec![1, 2, 3];
/// ```
/// (wasm32 only; see the `greet` example).
pub struct Bump {
    next: AtomicUsize,
    end: AtomicUsize,
}

const PAGE: usize = 65536;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut next = self.next.load(Ordering::Relaxed);
        let mut end = self.end.load(Ordering::Relaxed);
        if next == 0 {
            // Start past the memory the module was instantiated with.
            let pages = core::arch::wasm32::memory_size(0);
            next = pages * PAGE;
            end = next;
        }
        let start = (next + layout.align() - 1) & !(layout.align() - 1);
        let Some(new_next) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if new_next > end {
            let grow = (new_next - end).div_ceil(PAGE);
            if core::arch::wasm32::memory_grow(0, grow) == usize::MAX {
                return core::ptr::null_mut();
            }
            end += grow * PAGE;
        }
        self.next.store(new_next, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    next: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
};
