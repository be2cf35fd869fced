//! Run-length encoder and decoder. The first input byte picks the mode:
//! `e` encodes the rest as (count, byte) pairs with counts 1..=255; `d` decodes such
//! pairs. Status 1 for an unknown mode, 2 for an odd-length or zero-count encoding.
#![no_std]

fn encode(buf: &mut [u8], out: &mut [u8; 512]) {
    let mut run: Option<(u8, u8)> = None;
    let mut at = 0;
    let flush = |pair: (u8, u8), at: &mut usize, out: &mut [u8; 512]| {
        out[*at] = pair.1;
        out[*at + 1] = pair.0;
        *at += 2;
        if *at == out.len() {
            agent_sdk::write(&out[..]);
            *at = 0;
        }
    };
    let mut input = agent_sdk::input_chunks(buf);
    while let Some(chunk) = input.next_chunk() {
        for &b in chunk {
            run = match run {
                Some((byte, count)) if byte == b && count < 255 => Some((byte, count + 1)),
                Some(pair) => {
                    flush(pair, &mut at, out);
                    Some((b, 1))
                }
                None => Some((b, 1)),
            };
        }
    }
    if let Some(pair) = run {
        flush(pair, &mut at, out);
    }
    agent_sdk::write(&out[..at]);
}

fn decode(buf: &mut [u8]) -> i32 {
    let mut pending: Option<u8> = None;
    let mut fill = [0u8; 255];
    let mut input = agent_sdk::input_chunks(buf);
    while let Some(chunk) = input.next_chunk() {
        for &b in chunk {
            match pending.take() {
                None => pending = Some(b),
                Some(0) => return 2,
                Some(count) => {
                    fill[..count as usize].fill(b);
                    agent_sdk::write(&fill[..count as usize]);
                }
            }
        }
    }
    if pending.is_some() { 2 } else { 0 }
}

agent_sdk::act! {
    fn() -> i32 {
        let mut mode = [0u8; 1];
        if agent_sdk::read_input(&mut mode) == 0 {
            return 1;
        }
        let mut buf = [0u8; 2048];
        match mode[0] {
            b'e' => {
                let mut out = [0u8; 512];
                encode(&mut buf, &mut out);
                0
            }
            b'd' => decode(&mut buf),
            _ => 1,
        }
    }
}
