//! Byte sorter: writes its input's bytes in ascending order (a counting sort, so any
//! input size works in constant memory).
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let mut counts = [0u64; 256];
        let mut buf = [0u8; 4096];
        let mut input = agent_sdk::input_chunks(&mut buf);
        while let Some(chunk) = input.next_chunk() {
            for &b in chunk {
                counts[b as usize] += 1;
            }
        }
        for (byte, &count) in counts.iter().enumerate() {
            let mut left = count;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                buf[..n].fill(byte as u8);
                agent_sdk::write(&buf[..n]);
                left -= n as u64;
            }
        }
        0
    }
}
