//! Echo: copies its input to its output, 4 KiB at a time.
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let mut buf = [0u8; 4096];
        let mut input = agent_sdk::input_chunks(&mut buf);
        while let Some(chunk) = input.next_chunk() {
            agent_sdk::write(chunk);
        }
        0
    }
}
