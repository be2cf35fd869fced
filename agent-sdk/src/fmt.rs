//! `log!` with formatting into a fixed buffer: no allocator needed.

/// A fixed buffer that `core::fmt::Write` fills; what does not fit is cut.
///
/// ```
/// use core::fmt::Write;
/// let mut b = agent_sdk::LogBuffer::<8>::new();
/// write!(b, "{}", 1234567890).unwrap();
/// assert_eq!(b.as_bytes(), b"12345678");
/// ```
pub struct LogBuffer<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> LogBuffer<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        LogBuffer {
            buf: [0; N],
            len: 0,
        }
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for LogBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for LogBuffer<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Logs one formatted line (up to 256 bytes), like `format!`, without an allocator.
///
/// ```
/// # agent_sdk::testing::reset(b"");
/// agent_sdk::log!("{} + {} = {}", 2, 2, 4);
/// # assert_eq!(agent_sdk::testing::logs(), ["2 + 2 = 4"]);
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut b = $crate::LogBuffer::<256>::new();
        let _ = core::fmt::Write::write_fmt(&mut b, format_args!($($arg)*));
        $crate::log_bytes(b.as_bytes());
    }};
}
