//! All the `unsafe` of the SDK: the raw host functions (imports of module `agent` on
//! wasm32, the in-memory host of [`crate::testing`] elsewhere) and the bump allocator.

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "agent")]
    unsafe extern "C" {
        #[link_name = "input_len"]
        fn host_input_len() -> i32;
        #[link_name = "read_input"]
        fn host_read_input(ptr: *mut u8, len: i32) -> i32;
        #[link_name = "write_output"]
        fn host_write_output(ptr: *const u8, len: i32) -> i32;
        #[link_name = "log"]
        fn host_log(ptr: *const u8, len: i32);
        #[link_name = "send"]
        fn host_send(to: *const u8, to_len: i32, msg: *const u8, msg_len: i32) -> i32;
        #[link_name = "recv"]
        fn host_recv(ptr: *mut u8, len: i32) -> i32;
    }

    pub fn input_len() -> i32 {
        // SAFETY: takes no pointer; the host answers a length.
        unsafe { host_input_len() }
    }
    pub fn read_input(ptr: *mut u8, len: i32) -> i32 {
        // SAFETY: the host checks the range against the module's memory and traps on
        // a bad one; callers pass the pointer and length of a live mutable slice.
        unsafe { host_read_input(ptr, len) }
    }
    pub fn write_output(ptr: *const u8, len: i32) -> i32 {
        // SAFETY: as for `read_input`, for a live slice the host only reads.
        unsafe { host_write_output(ptr, len) }
    }
    pub fn log(ptr: *const u8, len: i32) {
        // SAFETY: as for `write_output`.
        unsafe { host_log(ptr, len) }
    }
    pub fn send(to: *const u8, to_len: i32, msg: *const u8, msg_len: i32) -> i32 {
        // SAFETY: as for `write_output`, for two live slices.
        unsafe { host_send(to, to_len, msg, msg_len) }
    }
    pub fn recv(ptr: *mut u8, len: i32) -> i32 {
        // SAFETY: as for `read_input`.
        unsafe { host_recv(ptr, len) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::abi::{RECV_NONE, RECV_TOO_SMALL, SEND_OK, SEND_UNKNOWN_RECIPIENT};
    use crate::testing::with_host;

    fn slice<'a>(ptr: *const u8, len: i32) -> &'a [u8] {
        // SAFETY: callers in this crate pass the pointer and length of a live slice.
        unsafe { core::slice::from_raw_parts(ptr, len.max(0) as usize) }
    }

    fn slice_mut<'a>(ptr: *mut u8, len: usize) -> &'a mut [u8] {
        // SAFETY: callers in this crate pass the pointer of a live mutable slice of at
        // least `len` bytes.
        unsafe { core::slice::from_raw_parts_mut(ptr, len) }
    }

    pub fn input_len() -> i32 {
        with_host(|h| h.input.len() as i32)
    }
    pub fn read_input(ptr: *mut u8, len: i32) -> i32 {
        with_host(|h| {
            let n = (h.input.len() - h.pos).min(len.max(0) as usize);
            slice_mut(ptr, n).copy_from_slice(&h.input[h.pos..h.pos + n]);
            h.pos += n;
            n as i32
        })
    }
    pub fn write_output(ptr: *const u8, len: i32) -> i32 {
        with_host(|h| {
            h.output.extend_from_slice(slice(ptr, len));
            len
        })
    }
    pub fn log(ptr: *const u8, len: i32) {
        with_host(|h| {
            h.logs
                .push(std::string::String::from_utf8_lossy(slice(ptr, len)).into_owned())
        })
    }
    pub fn send(to: *const u8, to_len: i32, msg: *const u8, msg_len: i32) -> i32 {
        with_host(|h| {
            let to = std::string::String::from_utf8_lossy(slice(to, to_len)).into_owned();
            if !h.peers.contains(&to) {
                return SEND_UNKNOWN_RECIPIENT;
            }
            h.sent.push((to, slice(msg, msg_len).to_vec()));
            SEND_OK
        })
    }
    pub fn recv(ptr: *mut u8, len: i32) -> i32 {
        with_host(|h| match h.inbox.front() {
            None => RECV_NONE,
            Some(m) if m.len() > len.max(0) as usize => RECV_TOO_SMALL,
            Some(_) => {
                let m = h.inbox.pop_front().unwrap_or_default();
                slice_mut(ptr, m.len()).copy_from_slice(&m);
                m.len() as i32
            }
        })
    }
}

pub use imp::*;

/// A bump allocator over memory the module grows on demand (`feature = "alloc"`,
/// wasm32 only). It never frees: fine for an agent whose instance lives for one call.
#[cfg(all(feature = "alloc", target_arch = "wasm32"))]
pub mod bump {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// The allocator. The SDK installs it as the global allocator when `alloc` is on;
    /// use `alloc` as usual:
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

    // SAFETY: `alloc` hands out each byte once (the cursor only moves forward), aligned
    // as asked, inside memory the module owns (grown with `memory.grow` before it is
    // handed out), or null when memory cannot grow; a wasm32 agent has one thread.
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
}
