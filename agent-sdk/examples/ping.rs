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

/// `prefix` and `n` in decimal, in `out`.
fn message<'a>(prefix: &[u8], n: u32, out: &'a mut [u8; 32]) -> &'a [u8] {
    let mut digits = [0u8; 20];
    let d = agent_sdk::decimal(n.into(), &mut digits);
    let len = prefix.len() + d.len();
    out[..prefix.len()].copy_from_slice(prefix);
    out[prefix.len()..len].copy_from_slice(d);
    &out[..len]
}

agent_sdk::act! {
    fn() -> i32 {
        let mut input = [0u8; 16];
        let goal = parse(agent_sdk::read_all(&mut input)).unwrap_or(3);
        let mut out = [0u8; 32];
        if STARTED.swap(1, Ordering::Relaxed) == 0 {
            return match agent_sdk::send("pong", message(b"ping ", 1, &mut out)) {
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
                agent_sdk::write(message(b"done after ", n, &mut out));
                agent_sdk::write(b" pongs\n");
                return 0;
            }
            if agent_sdk::send("pong", message(b"ping ", n + 1, &mut out)).is_err() {
                return 1;
            }
        }
        0
    }
}
