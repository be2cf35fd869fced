//! Echo: copies its input to its output, 4 KiB at a time.
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let mut buf = [0u8; 4096];
        loop {
            let n = agent_sdk::read_input(&mut buf);
            if n == 0 {
                return 0;
            }
            agent_sdk::write(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::act;
    #[test]
    fn echoes() {
        agent_sdk::testing::reset(b"hello\nworld");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::output(), b"hello\nworld");
    }
}
