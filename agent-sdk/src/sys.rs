//! The raw host functions: imports of module `agent` on wasm32, the in-memory host of
//! [`crate::testing`] elsewhere.

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

    // SAFETY (all below): the host checks every pointer range against the module's
    // memory and traps on a bad one; the callers pass pointers and lengths of live
    // slices.
    pub fn input_len() -> i32 {
        unsafe { host_input_len() }
    }
    pub fn read_input(ptr: *mut u8, len: i32) -> i32 {
        unsafe { host_read_input(ptr, len) }
    }
    pub fn write_output(ptr: *const u8, len: i32) -> i32 {
        unsafe { host_write_output(ptr, len) }
    }
    pub fn log(ptr: *const u8, len: i32) {
        unsafe { host_log(ptr, len) }
    }
    pub fn send(to: *const u8, to_len: i32, msg: *const u8, msg_len: i32) -> i32 {
        unsafe { host_send(to, to_len, msg, msg_len) }
    }
    pub fn recv(ptr: *mut u8, len: i32) -> i32 {
        unsafe { host_recv(ptr, len) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::testing::with_host;

    fn slice<'a>(ptr: *const u8, len: i32) -> &'a [u8] {
        // SAFETY: callers in this crate pass the pointer and length of a live slice.
        unsafe { core::slice::from_raw_parts(ptr, len.max(0) as usize) }
    }

    pub fn input_len() -> i32 {
        with_host(|h| h.input.len() as i32)
    }
    pub fn read_input(ptr: *mut u8, len: i32) -> i32 {
        with_host(|h| {
            let n = (h.input.len() - h.pos).min(len.max(0) as usize);
            // SAFETY: as above, for a live mutable slice.
            let dst = unsafe { core::slice::from_raw_parts_mut(ptr, n) };
            dst.copy_from_slice(&h.input[h.pos..h.pos + n]);
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
                return crate::SEND_UNKNOWN_RECIPIENT;
            }
            h.sent.push((to, slice(msg, msg_len).to_vec()));
            crate::SEND_OK
        })
    }
    pub fn recv(ptr: *mut u8, len: i32) -> i32 {
        with_host(|h| match h.inbox.front() {
            None => crate::RECV_NONE,
            Some(m) if m.len() > len.max(0) as usize => crate::RECV_TOO_SMALL,
            Some(_) => {
                let m = h.inbox.pop_front().unwrap_or_default();
                // SAFETY: as above, for a live mutable slice of at least m.len() bytes.
                let dst = unsafe { core::slice::from_raw_parts_mut(ptr, m.len()) };
                dst.copy_from_slice(&m);
                m.len() as i32
            }
        })
    }
}

pub use imp::*;
