//! ABI v1, the contract between the sandbox and an agent (DESIGN.md § ABI): the
//! import module, the host functions with their types, the exports the sandbox looks
//! for and the codes `send` and `recv` answer. The host functions (`host`), the hub
//! (`mailbox`), validation and the policy read them from here; `agent-sdk` carries
//! the same values and a test holds them equal.

/// The import module of every host function.
pub const MODULE: &str = "agent";

/// The export the sandbox calls.
pub const ACT: &str = "act";

/// The memory export the host functions read and write.
pub const MEMORY: &str = "memory";

/// One host function of ABI v1. Every parameter and result is an `i32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFunction {
    /// Its name in [`MODULE`].
    pub name: &'static str,
    /// `module.name`, as the policy's `imports.allow` lists it.
    pub import: &'static str,
    /// How many `i32` parameters it takes.
    pub params: usize,
    /// How many `i32` results it gives (0 or 1).
    pub results: usize,
}

impl HostFunction {
    /// True when it takes pointers into the module's [`MEMORY`] export.
    pub const fn takes_pointers(&self) -> bool {
        self.params > 0
    }
}

/// `input_len() -> i32`: the length of this call's input.
pub const INPUT_LEN: HostFunction = host("input_len", "agent.input_len", 0, 1);
/// `read_input(ptr, len) -> i32`: reads the next input bytes; answers how many.
pub const READ_INPUT: HostFunction = host("read_input", "agent.read_input", 2, 1);
/// `write_output(ptr, len) -> i32`: appends to the output; answers `len`.
pub const WRITE_OUTPUT: HostFunction = host("write_output", "agent.write_output", 2, 1);
/// `log(ptr, len)`: one log line.
pub const LOG: HostFunction = host("log", "agent.log", 2, 0);
/// `send(to_ptr, to_len, msg_ptr, msg_len) -> i32`: a message to a peer; answers
/// [`SEND_OK`] or a refusal code.
pub const SEND: HostFunction = host("send", "agent.send", 4, 1);
/// `recv(ptr, len) -> i32`: the next message; answers its length or [`RECV_NONE`],
/// [`RECV_TOO_SMALL`].
pub const RECV: HostFunction = host("recv", "agent.recv", 2, 1);

/// Every host function of ABI v1, in DESIGN.md's order.
pub const HOST_FUNCTIONS: [HostFunction; 6] =
    [INPUT_LEN, READ_INPUT, WRITE_OUTPUT, LOG, SEND, RECV];

/// The host functions of ABI v1, as `module.name`.
pub const ABI_V1_IMPORTS: [&str; 6] = {
    let mut names = [""; 6];
    let mut i = 0;
    while i < names.len() {
        names[i] = HOST_FUNCTIONS[i].import;
        i += 1;
    }
    names
};

const fn host(
    name: &'static str,
    import: &'static str,
    params: usize,
    results: usize,
) -> HostFunction {
    HostFunction {
        name,
        import,
        params,
        results,
    }
}

/// `send` result: the message was queued.
pub const SEND_OK: i32 = 0;
/// `send` result: no agent of that id takes part in this run.
pub const SEND_UNKNOWN_RECIPIENT: i32 = -1;
/// `send` result: the recipient's mailbox is full.
pub const SEND_MAILBOX_FULL: i32 = -2;
/// `send` result: the message is over `limits.message_bytes`.
pub const SEND_TOO_LARGE: i32 = -3;
/// `recv` result: no message is waiting.
pub const RECV_NONE: i32 = -1;
/// `recv` result: the next message is longer than the buffer; it stays queued.
pub const RECV_TOO_SMALL: i32 = -2;

/// The host function of ABI v1 named `name` (in [`MODULE`]).
pub fn host_function(name: &str) -> Option<&'static HostFunction> {
    HOST_FUNCTIONS.iter().find(|f| f.name == name)
}

/// The type an ABI v1 host function must have: (params, results), all i32.
pub fn abi_signature(name: &str) -> Option<(usize, usize)> {
    host_function(name).map(|f| (f.params, f.results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_module_dot_name() {
        for f in HOST_FUNCTIONS {
            assert_eq!(f.import, format!("{MODULE}.{}", f.name));
        }
        assert_eq!(ABI_V1_IMPORTS[3], "agent.log");
        assert_eq!(abi_signature("send"), Some((4, 1)));
        assert_eq!(abi_signature("exit"), None);
        assert!(!INPUT_LEN.takes_pointers() && LOG.takes_pointers());
    }
}
