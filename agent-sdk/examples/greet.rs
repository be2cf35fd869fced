//! Greet: collects its input in a `Vec` (the `alloc` feature's bump allocator), logs
//! its length with `log!` (the `fmt` feature) and writes "hello, INPUT!".
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

agent_sdk::act! {
    fn() -> i32 {
        let mut name = Vec::new();
        let mut buf = [0u8; 256];
        let mut input = agent_sdk::input_chunks(&mut buf);
        while let Some(chunk) = input.next_chunk() {
            name.extend_from_slice(chunk);
        }
        agent_sdk::log!("input of {} bytes", name.len());
        agent_sdk::write(b"hello, ");
        agent_sdk::write(&name);
        agent_sdk::write(b"!");
        0
    }
}
