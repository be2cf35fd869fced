//! Word count: writes "LINES WORDS BYTES\n" for its input, like `wc`.
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
        let mut in_word = false;
        let mut buf = [0u8; 4096];
        let mut input = agent_sdk::input_chunks(&mut buf);
        while let Some(chunk) = input.next_chunk() {
            for &b in chunk {
                bytes += 1;
                if b == b'\n' {
                    lines += 1;
                }
                let space = matches!(b, b' ' | b'\n' | b'\t' | b'\r' | 0x0b | 0x0c);
                if !space && !in_word {
                    words += 1;
                }
                in_word = !space;
            }
        }
        let mut out = [0u8; 64];
        let mut at = 0;
        let mut digits = [0u8; 20];
        for (n, end) in [(lines, b' '), (words, b' '), (bytes, b'\n')] {
            let d = agent_sdk::decimal(n, &mut digits);
            out[at..at + d.len()].copy_from_slice(d);
            out[at + d.len()] = end;
            at += d.len() + 1;
        }
        agent_sdk::write(&out[..at]);
        0
    }
}
