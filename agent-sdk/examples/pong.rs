//! Pong: answers every "ping N" with "pong N" to the agent named "ping".
#![no_std]

agent_sdk::act! {
    fn() -> i32 {
        let mut buf = [0u8; 32];
        let mut reply = [0u8; 32];
        while let Ok(Some(len)) = agent_sdk::recv(&mut buf) {
            let Some(rest) = buf[..len].strip_prefix(b"ping ") else {
                return 2;
            };
            reply[..5].copy_from_slice(b"pong ");
            reply[5..5 + rest.len()].copy_from_slice(rest);
            if agent_sdk::send("ping", &reply[..5 + rest.len()]).is_err() {
                return 1;
            }
        }
        0
    }
}
