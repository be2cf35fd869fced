//! Greet: collects its input in a `Vec` (the `alloc` feature's bump allocator), logs
//! its length with `log!` (the `fmt` feature) and writes "hello, INPUT!".
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

agent_sdk::act! {
    fn() -> i32 {
        let mut name = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = agent_sdk::read_input(&mut buf);
            if n == 0 {
                break;
            }
            name.extend_from_slice(&buf[..n]);
        }
        agent_sdk::log!("input of {} bytes", name.len());
        agent_sdk::write(b"hello, ");
        agent_sdk::write(&name);
        agent_sdk::write(b"!");
        0
    }
}

#[cfg(test)]
mod tests {
    use super::act;

    #[test]
    fn greets() {
        agent_sdk::testing::reset(b"world");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::output(), b"hello, world!");
        assert_eq!(agent_sdk::testing::logs(), ["input of 5 bytes"]);
    }
}
