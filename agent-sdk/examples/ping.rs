//! Ping: plays ping-pong with the agent named "pong". On its first call it sends
//! "ping 1"; on each "pong N" it sends "ping N+1" until N reaches the number in its
//! input (default 3), then writes "done after N pongs\n".
#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};

static STARTED: AtomicU32 = AtomicU32::new(0);

fn parse(bytes: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    let mut any = false;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                n = n.checked_mul(10)?.checked_add((b - b'0') as u32)?;
                any = true;
            }
            b'\n' | b' ' | b'\r' => {}
            _ => return None,
        }
    }
    any.then_some(n)
}

fn message(prefix: &[u8], n: u32, out: &mut [u8; 32]) -> usize {
    out[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out[at] = *d;
        at += 1;
    }
    at
}

agent_sdk::act! {
    fn() -> i32 {
        let mut input = [0u8; 16];
        let goal = parse(agent_sdk::read_all(&mut input)).unwrap_or(3);
        let mut out = [0u8; 32];
        if STARTED.swap(1, Ordering::Relaxed) == 0 {
            let len = message(b"ping ", 1, &mut out);
            return match agent_sdk::send("pong", &out[..len]) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
        let mut buf = [0u8; 32];
        while let Ok(Some(len)) = agent_sdk::recv(&mut buf) {
            let Some(n) = buf[..len].strip_prefix(b"pong ").and_then(parse) else {
                return 2;
            };
            if n >= goal {
                let len = message(b"done after ", n, &mut out);
                agent_sdk::write(&out[..len]);
                agent_sdk::write(b" pongs\n");
                return 0;
            }
            let len = message(b"ping ", n + 1, &mut out);
            if agent_sdk::send("pong", &out[..len]).is_err() {
                return 1;
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::act;
    #[test]
    fn plays() {
        agent_sdk::testing::reset(b"2");
        agent_sdk::testing::add_peer("pong");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::take_sent()[0].1, b"ping 1");
        agent_sdk::testing::rewind();
        agent_sdk::testing::deliver(b"pong 1");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::take_sent()[0].1, b"ping 2");
        agent_sdk::testing::rewind();
        agent_sdk::testing::deliver(b"pong 2");
        assert_eq!(act(), 0);
        assert_eq!(agent_sdk::testing::output(), b"done after 2 pongs\n");
    }
}
